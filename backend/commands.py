"""The CLI's verbs, in the order ``python -m backend --help`` lists them.

Each verb module owns its verbs: an ``add_parser(sub)`` that adds them to the CLI's
subparsers with ``set_defaults(func=handler)``. To add a verb, write that module and name its
``add_parser`` here. Verb modules import nothing from :mod:`backend.cli` (progress bars come
from :mod:`backend.progress`), so the dependency runs one way: cli -> commands -> verbs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from backend import (
    audits_cli,
    build_cli,
    count_cli,
    dataset_cli,
    impact_cli,
    mixture_cli,
    relocate,
    search_cli,
    steps_cli,
    subsets_cli,
)
from backend.concepts import command as concepts_command
from backend.contamination import command as contamination_command
from backend.democlip import command as democlip_command
from backend.export import command as export_command
from backend.safety import command as safety_command

VERBS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    build_cli.add_parser,  # build
    dataset_cli.add_embeddings_parser,  # embeddings
    build_cli.add_demo_parser,  # demo
    steps_cli.add_parser,  # embed, index, map
    search_cli.add_parser,  # search
    dataset_cli.add_parser,  # info, list, synth, synth-vectors
    export_command.add_parser,  # export
    subsets_cli.add_parser,  # subset
    safety_command.add_parser,  # score, dedup
    concepts_command.add_parser,  # concepts
    democlip_command.add_parser,  # democlip
    count_cli.add_parser,  # count
    relocate.add_parser,  # relocate
    contamination_command.add_parser,  # contamination
    mixture_cli.add_parser,  # mixture
    impact_cli.add_parser,  # impact
    audits_cli.add_parser,  # linkrot, blocklist
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add every verb to the CLI's subparsers."""
    for add in VERBS:
        add(sub)
