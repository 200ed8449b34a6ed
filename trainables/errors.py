"""The one exception type for mistakes a user can fix (bad flag, missing file, wrong layout)."""

# Where str.splitlines() breaks a line, as Python escapes it: a message quoting the user's value raw (a path, an
# unrecognized argument) must not spill onto a second line.
LINE_BREAKS = {ord(char): repr(char)[1:-1] for char in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback: line breaks in the message
    are escaped."""

    def __init__(self, message: str = ""):
        super().__init__(str(message).translate(LINE_BREAKS))
