"""One error path for every command: ``error: <message>`` and exit status 2 for bad input.

A command's ``main`` is wrapped by :func:`run`::

    if __name__ == "__main__":
        sys.exit(run(main))

:class:`dmm.errors.DMMError` (bad input, named in its message) prints one ``error:`` line on
stderr and exits 2; any other exception is a bug and keeps its traceback. ``--debug`` anywhere
on the command line (removed before ``main`` sees it) shows the traceback of a ``DMMError`` too.
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable, Sequence

from .errors import DMMError

DEBUG_FLAG = "--debug"


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


__all__ = ["run", "DEBUG_FLAG"]
