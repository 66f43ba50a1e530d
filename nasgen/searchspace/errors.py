"""The errors a dataset loader raises for files a user supplied."""


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not where they should be; the message says what to put where."""


class DataError(ValueError):
    """A dataset's files are there but damaged, foreign or unsafe; the message names the file."""
