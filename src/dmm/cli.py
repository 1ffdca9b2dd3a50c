"""One error path and one help style for every command.

A command's ``main`` is wrapped by :func:`run`::

    if __name__ == "__main__":
        sys.exit(run(main))

:class:`dmm.errors.DMMError` (bad input, named in its message) prints one ``error:`` line on
stderr and exits 2; any other exception is a bug and keeps its traceback. ``--debug`` anywhere
on the command line (removed before ``main`` sees it) shows the traceback of a ``DMMError`` too.

Every command builds its parser with :func:`command_parser`: ``prog`` is the command a user
types, each option's default is shown once (never for a required option, nor where the help
already says it), ``--debug`` is listed, and a command that takes ``KEY VALUE`` config
overrides (:func:`add_overrides`) accepts its options before, between or after them.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable, Sequence

from .errors import DMMError

DEBUG_FLAG = "--debug"
DEBUG_HELP = "on an error, show the full traceback instead of one error line"


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)`` and turn a :class:`DMMError` into ``error: <message>`` and status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        status = main(args)
    except DMMError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written; ``(default: X)`` after an option's help, once.

    Not shown: for a required option, a flag (``store_true``), a default of None (the help
    says what happens without the option), or help that already names its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = ("default" not in text and not action.required and action.nargs != 0
                 and action.default is not None and action.default is not argparse.SUPPRESS
                 and bool(action.option_strings))
        return f"{text} (default: %(default)s)" if shown else text


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that lets options follow ``KEY VALUE`` overrides (see :func:`add_overrides`)."""

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse's
        if any(a.dest == OVERRIDES for a in self._actions):
            return self.parse_intermixed_args(args, namespace)
        return super().parse_args(args, namespace)


def command_parser(prog: str, doc: str | None, summary_only: bool = False) -> CommandParser:
    """The parser of the command ``prog`` (``python -m dmm.test``, ``python src/tools/x.py``).

    ``doc``: the module docstring, shown as the description (its first paragraph only with
    ``summary_only``). ``--debug`` is added (:func:`run` handles it).
    """
    description = (doc or "").split("\n\n")[0] if summary_only else doc
    parser = CommandParser(prog=prog, description=description, formatter_class=HelpFormatter)
    parser.add_argument(DEBUG_FLAG, action="store_true", help=DEBUG_HELP)
    return parser


OVERRIDES = "opts"


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """The positional ``KEY VALUE`` config overrides (``parser.parse_args(...).opts``)."""
    parser.add_argument(OVERRIDES, nargs="*", metavar="KEY VALUE",
                        help="config overrides, e.g. DEVICE cpu SOLVER.EPOCHS 2 (keys: src/dmm/config/defaults.py)")


__all__ = ["CommandParser", "DEBUG_FLAG", "HelpFormatter", "add_overrides", "command_parser", "run"]
