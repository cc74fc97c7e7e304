"""The one exception type the command line turns into a one-line message and exit status 2."""


class FewshotError(Exception):
    """Bad input or missing data: the message says what is wrong and how to fix it."""


class Interrupted(FewshotError):
    """The user stopped a run (Ctrl-C) after its progress was saved: exit status 130."""
