"""``python -m backend``: build, inspect and demo datasets without a browser.

The verbs live in their own modules, listed by :mod:`backend.commands`; this module parses the
command line and runs the verb, turning a missing step or bad input into one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from backend import commands, paths
from backend.sources import SourceError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend", description=__doc__.splitlines()[0])
    commands.register(p.add_subparsers(dest="command", required=True))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from backend.bounded import trust_local_user
    from backend.index import VectorIndexError

    try:
        with trust_local_user(args.command != "count"):  # count: the UI's box, UI's limits
            return args.func(args)
    except (
        SourceError, paths.BadName, FileNotFoundError, ValueError, RuntimeError, VectorIndexError
    ) as e:  # a missing step or bad input: one line naming what to run, never a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
