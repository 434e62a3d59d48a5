"""The one exception type for user mistakes: the CLI turns it into a one-line message and exit code 2."""


class UserError(Exception):
    """A mistake in what the user asked for (unknown model, malformed range, bad option...)."""


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One line for a record's ``error``: the exception's type and its message's first line.

    A UserError's message already says what is wrong, so it stands alone.
    """
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return (first if isinstance(exc, UserError) else f"{type(exc).__name__}: {first}")[:limit]
