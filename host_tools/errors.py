# The one error type the `earshot` command prints as a single line.


class CommandError(Exception):
    """A user-facing failure: says what is wrong and what to do. Exit status 1."""
