"""``retouch-train``: the headless training and data command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds an
argparse parser whose ``func`` runs the command. Heavy imports (diffusers, open_clip) happen
inside those functions, so ``retouch-train --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMAND_MODULES = (
    "data.make_dataset", "data.calibration", "data.online", "data.preview", "train.lite", "train.teacher", "train.distill", "eval.evaluate",
)


def add_subcommand(subparsers, name: str, help: str, doc: str, add_arguments) -> argparse.ArgumentParser:
    """Add subcommand ``name``: its description is the first paragraph of ``doc`` (the module's
    docstring); ``add_arguments(parser)`` adds its options and sets ``func``."""
    parser = subparsers.add_parser(name, help=help, description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(parser)


def run_subcommand(name: str, doc: str, add_arguments, argv=None) -> int:
    """``python -m <module> ...``: subcommand ``name`` on its own, same options as ``retouch-train name``."""
    parser = add_arguments(argparse.ArgumentParser(prog=f"retouch-train {name}", description=doc.split("\n\n")[0]))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retouch-train", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f".{name}", __package__).register(subparsers)
    return parser


def main(argv=None) -> int:
    """Console entry point: bad input (missing files, invalid configs) is one line on stderr,
    exit status 2; anything else is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:
        print(f"retouch-train {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
