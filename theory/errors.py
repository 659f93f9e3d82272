"""The one exception type for bad input from outside (command line, config files, stores, the Python API).

The command line reports a `UserInputError` in one line with exit status 2; any other exception is a bug in
this tool and exits 1. It subclasses ValueError so that callers who catch ValueError keep working.
"""


class UserInputError(ValueError):
    """Input outside what the tool accepts; the message names the input, the value and what is allowed."""
