"""The `fhevm-dagster` command.

Each command group lives in its own module that exposes `register(subparsers)`; the module adds
its sub-commands with `set_defaults(handler=...)`, where a handler takes the parsed arguments and
returns the exit status. A module may also expose `ERRORS`, exception types whose message is shown
to the user as `error: ...` (exit 1) instead of a traceback. Add a group by appending its module to
COMMAND_GROUPS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: Modules that register command groups, in help order.
COMMAND_GROUPS: tuple[str, ...] = (
    "fhevm_dagster.cli.devnet",
    "fhevm_dagster.cli.keys",
    "fhevm_dagster.cli.ciphertext",
    "fhevm_dagster.cli.metrics",
    "fhevm_dagster.cli.runs",
    "fhevm_dagster.cli.trace",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> tuple[argparse.ArgumentParser, tuple[type[BaseException], ...]]:
    """The argument parser with every command group, and the error types shown without traceback."""
    parser = argparse.ArgumentParser(
        prog="fhevm-dagster", description="fhEVM coprocessor on Dagster"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    errors: list[type[BaseException]] = []
    for name in COMMAND_GROUPS:
        module: Any = importlib.import_module(name)
        module.register(subparsers)
        errors.extend(getattr(module, "ERRORS", ()))
    return parser, tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    parser, errors = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
