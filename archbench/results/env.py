"""The environment stored in every run document, its fingerprint, and the short id records name it by.

Besides the machine and the versions, the environment names two commits: ``git_commit``, the
checkout archbench runs from, and ``project_commit`` (with ``project_commit_date``), the commit
of the git repository of the working directory: the user's project that CI is measuring.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux, else platform)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the checkout archbench runs from, when there is one."""
    return _git(Path(__file__).resolve().parents[2], "rev-parse", "HEAD")


def project_commit(folder: str | Path = ".") -> dict[str, str | None]:
    """The commit of the user's project (the git repository of ``folder``, the working directory) and its
    committer date (ISO 8601); both None outside a git repository."""
    found = _git(Path(folder), "log", "-1", "--format=%H %cI")
    commit, _, date = (found or "").partition(" ")
    return {"project_commit": commit or None, "project_commit_date": date or None}


def _git(folder: Path, *args: str) -> str | None:
    """``git -C folder ARGS``'s output, or None when git is missing, fails or the folder is no repository."""
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def collect_env(device: str = "cpu", **extra: Any) -> dict[str, Any]:
    """Versions, CPU, GPU, threads and device; ``extra`` adds run-specific facts (dtype, measured peak...)."""
    import torch

    import archbench

    env: dict[str, Any] = {
        "archbench": archbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "transformers": _version("transformers"),
        "fvcore": _version("fvcore"),
        "timm": _version("timm"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": cpu_count(),
        "threads": torch.get_num_threads(),
        "device": device,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
        **project_commit(),
    }
    env.update(extra)
    return env


FINGERPRINT_KEYS = ("cpu", "gpu", "device", "threads", "torch", "dtype")
"""The environment entries that must match for two runs' timings to be comparable."""


def fingerprint(env: dict[str, Any]) -> tuple:
    """What must match for two runs' timings to be comparable."""
    return tuple(env.get(k) for k in FINGERPRINT_KEYS)


def env_id(env: dict[str, Any]) -> str:
    """A short id of ``env``'s machine (a hash of its fingerprint): equal ids, comparable timings."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(fingerprint(env), default=str).encode()).hexdigest()[:12]


def cpu_count() -> int | None:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
