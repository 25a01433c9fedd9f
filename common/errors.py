"""User-facing errors: one line naming the file (and line) and what was expected.

``train.py`` and ``inference.py`` catch :class:`UserError`, print ``error: <message>`` and exit 2,
so anything raised from these classes must read well without a traceback.
"""


class UserError(ValueError):
    """A problem with the user's input (files, flags, data), not a bug in the code."""


class AudioError(UserError):
    """A wav file is missing, unreadable, truncated, or has the wrong rate/channel count."""


class FilelistError(UserError):
    """A filelist is missing or has a malformed line."""


class CheckpointError(UserError):
    """A checkpoint is missing, not a checkpoint, unsafe to load, or for the other model."""


class DataError(UserError):
    """A dataset cannot be built (all problems found up front, reported together)."""


class TextError(UserError):
    """Input text cannot be turned into a symbol sequence."""
