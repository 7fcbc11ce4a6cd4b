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


SHOWN_CHARS = 60  # longest rendering of a user's value inside an error message


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """repr(value) cut to `limit` characters, for error messages. reprlib stops after a few items
    per level and a few levels, so even a huge or deeply shared structure (a YAML alias bomb)
    costs microseconds, and a message stays one short line whatever the input."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxtuple, r.maxset = 3, 6, 6, 6, 6
    r.maxstring, r.maxother, r.maxlong = limit, limit, limit
    text = r.repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_name(key: object, limit: int = 40) -> str:
    """A key as typed when it is a short printable string (train.max_epochs), else shown()."""
    if isinstance(key, str) and len(key) <= limit and key.isprintable():
        return key
    return shown(key, limit)


def shown_path(path: object, limit: int = SHOWN_CHARS) -> str:
    """A path quoted for a message, its start elided past `limit` characters: the end of a
    path (the file's own name) is the part that tells the user which file is meant."""
    text = repr(str(path))
    return text if len(text) <= limit else "'..." + text[-(limit - 4) :]
