"""The project's error types: bad input that a command reports as one ``error:`` line.

Every error the project raises on purpose for bad input (a missing or corrupt file, a video
or frame that is not there, a config value out of range) derives from :class:`DMMError`, so
the command-line layer (:mod:`dmm.cli`) can tell them from bugs: a ``DMMError`` prints
``error: <message>`` and exits 2, anything else keeps its traceback. The subclasses also
derive from the builtin a caller would expect (``FileNotFoundError``, ``ValueError``), so
``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations

import pickle


class DMMError(Exception):
    """Base of every error that reports bad input; the message names the file, video, frame or key."""


class InputError(DMMError, ValueError):
    """An input file or value is unusable (corrupt, wrong shape, out of range)."""


class MissingInputError(DMMError, FileNotFoundError):
    """A file or folder the command needs does not exist."""


class OutputExistsError(DMMError, FileExistsError):
    """An output file or folder already exists and the command will not overwrite it."""


class ConfigError(DMMError, ValueError):
    """A config file or ``KEY VALUE`` override is wrong (unknown key, bad value)."""


class MissingKeyError(DMMError, KeyError):
    """A key the input should hold is not there (a frame of a proposal file, a weight).

    Prints its message as is (a plain ``KeyError`` prints the repr of its argument).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnsafePickleError(InputError, pickle.UnpicklingError):
    """A file holds pickled Python objects this project refuses to load (they could run code)."""


def size_text(shape) -> str:
    """``H x W`` of an (H, W, ...) shape: every size in a message, height first."""
    return f"{shape[0]} x {shape[1]}"


__all__ = ["ConfigError", "DMMError", "InputError", "MissingInputError", "MissingKeyError",
           "OutputExistsError", "UnsafePickleError", "size_text"]
