"""User-facing errors: one line naming the file (and line) and what was expected.

The entry points run through :func:`run_cli`, which prints ``error: <message>`` and exits 2 on a
:class:`UserError`, so anything raised from these classes must read well without a traceback; an
:class:`InputWarning` shows as one ``warning: <message>`` line, not with the code line that raised it.
"""
import sys
import warnings
from typing import Any, Callable


def first_line(err: BaseException) -> str:
    """An exception's message cut to one line (its type's name when it has none), for a one-line error."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


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


class InputWarning(UserWarning):
    """Something about the user's input that does not stop the run (characters dropped from a text,
    an utterance that reached the decoder's step limit)."""


def run_cli(entry_point: Callable[..., int], *args: Any) -> int:
    """Run a command's body: a UserError becomes one `error:` line on stderr and exit code 2, and an
    InputWarning is shown as one `warning:` line. Only the formatting changes, so code that records
    warnings (pytest.warns, catch_warnings(record=True)) still sees them."""
    default_format = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):
        if issubclass(category, InputWarning):
            return f"warning: {message}\n"
        return default_format(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        return entry_point(*args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = default_format
