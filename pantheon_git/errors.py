"""Errors the user can act on: printed as one line by the CLI, which then exits with status 2."""


class PantheonError(Exception):
    """A refusal with a reason the user can fix; its message is one line naming the file or field."""

    exit_code = 2


class ConflictError(PantheonError):
    """A compare-and-swap on a ref kept losing against other writers."""
