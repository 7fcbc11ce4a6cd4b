"""User-facing errors: each carries a one-line message that names the problem and what is allowed.

The CLI prints the message and exits with status 2; no traceback is shown for these.
"""


class TrainwellError(Exception):
    """Bad input from the user (file, config, checkpoint, argument)."""


class ConfigError(TrainwellError):
    """A config field is unknown, of the wrong type or out of range."""


class DataError(TrainwellError):
    """A data file or data set cannot be used as given."""


class CheckpointError(TrainwellError):
    """A checkpoint is missing, torn, foreign or unsafe."""
