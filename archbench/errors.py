"""The one exception type for user mistakes: the CLI turns it into a one-line message and exit code 2."""


class UserError(Exception):
    """A mistake in what the user asked for (unknown model, malformed range, bad option...)."""
