"""The one exception type for mistakes a user can fix (bad flag, missing file, wrong layout)."""


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""
