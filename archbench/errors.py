"""The exceptions the CLI turns into one line on stderr: UserError (exit 2) and MachineError (exit 1).

Anything else is a bug: one line, its traceback in a log file, exit 3 (see archbench.cli.common).
"""

import sys


class UserError(Exception):
    """A mistake in what the user asked for (unknown model, malformed range, bad option...)."""


class MachineError(Exception):
    """A fault of the machine, not of the request (disk full, I/O error): one line on stderr and exit 1."""


class LibraryBehaviourError(MachineError):
    """An installed library did not behave as a figure assumes (a dropped cache, a renamed argument): the
    figure is refused, one line naming the library's version, exit 1; inside a suite, an error row."""


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One line for a record's ``error``: the exception's type and its message's first line.

    A UserError's message already says what is wrong, so it stands alone; so does the failure of
    the forward of a model from the user's code ("MODEL: its forward failed: ...").
    """
    source = sys.modules.get("archbench.models.python_source")  # not loaded: no model from user code was built
    failed = source.forward_failure(exc) if source else None
    if failed:
        return failed[:limit]
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return (first if isinstance(exc, UserError) else f"{type(exc).__name__}: {first}")[:limit]
