"""Output files: every one written atomically, a path checked before it is used, a safe file name.

:func:`write_atomic` writes a temporary file beside the target (prefix :data:`TEMP_PREFIX`),
fsyncs it and renames it over the target, so a reader (or a crash) sees the old file or the
new one, never half of one. The writer holds an ``flock`` on its temporary file; a leftover
of a killed write (older than this process and not locked) is removed by the next write to
that folder.

A path the user gave wrongly (a directory, a path under a file, a read-only place) is a
:class:`UserError` (exit 2); a fault of the machine (disk full, I/O error) is a
:class:`MachineError` (exit 1). Both are one line naming the path and the reason.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from pathlib import Path

from archbench.errors import MachineError, UserError

TEMP_PREFIX = ".archbench-tmp-"
FILE_MODE = 0o644
_STARTED = time.time()  # a temporary file older than this process cannot be one of its own writes
_USER_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
                errno.ENOENT, errno.EEXIST, errno.ELOOP}


def output_error(path: str | Path, exc: OSError) -> Exception:
    """The one-line error for a failed write to ``path``: UserError for a wrong path, MachineError otherwise."""
    reason = exc.strerror or str(exc)
    if exc.errno in _USER_ERRNOS:
        return UserError(f"cannot write {path}: {reason}")
    return MachineError(f"cannot write {path}: {reason}")


def check_writable(path: str | Path) -> Path:
    """UserError unless ``path`` can be created or replaced: not a directory, under a writable directory."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a directory")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot write {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {ancestor} is not writable (permission denied)")
    return path


def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` atomically (temp file + fsync + rename), mode 0644.

    Creates missing parent folders; on any failure the temporary file is removed and the old
    file is untouched.
    """
    path = check_writable(path)
    data = content.encode() if isinstance(content, str) else content
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent)
        fd, tmp = _create_temp(path)
        with os.fdopen(fd, "wb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), FILE_MODE)
            os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        if tmp is not None:
            _remove(tmp)


def _create_temp(path: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=f"-{path.name}")


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files of killed writes in ``folder`` (older than this process, not locked)."""
    removed = []
    try:
        names = [entry for entry in os.scandir(folder) if entry.name.startswith(TEMP_PREFIX)]
    except OSError:
        return removed
    for entry in names:
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= _STARTED or not entry.is_file(follow_symlinks=False):
                continue
            with open(entry.path, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live writer holds it: BlockingIOError
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: some filesystems refuse to fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def safe_file_name(text: str, default: str = "run") -> str:
    """``text`` as one file name: no folder separators, no leading dots (``../../x`` gives ``x``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    name = re.sub(r"\.{2,}", ".", name)
    return name or default
