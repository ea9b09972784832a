"""The ``enlightengan`` command: one sub-command per module in :mod:`enlightengan.commands`.

Each command module defines ``register(subparsers)`` (arguments only, no heavy imports) and
``run(args) -> int`` (the exit status). Heavy modules are imported inside ``run``, so
``enlightengan --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["build_parser", "main"]

#: Sub-commands in the order ``--help`` lists them; each is ``enlightengan.commands.<name>``.
COMMANDS = ("enhance", "train", "evaluate", "export", "serve")


def _available_commands() -> list[str]:
    found = []
    for name in COMMANDS:
        try:
            importlib.import_module(f"enlightengan.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"enlightengan.commands.{name}":
                raise
            continue
        found.append(name)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enlightengan",
        description="EnlightenGAN low-light image enhancement: enhance photos, train on your own "
        "unpaired data, measure quality.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'enlightengan COMMAND --help' for the options and examples of each command.",
    )
    parser.add_argument("--version", action="version", version=f"enlightengan {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _available_commands():
        importlib.import_module(f"enlightengan.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(f"enlightengan.commands.{args.command}")
    try:
        status: int = module.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
