"""``retouch-train``: the headless training and data command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds an
argparse parser whose ``func`` runs the command. Heavy imports (diffusers, open_clip) happen
inside those functions, so ``retouch-train --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib

SUBCOMMAND_MODULES = (
    "data.make_dataset", "data.calibration", "data.online", "data.preview", "train.lite", "train.teacher", "train.distill", "eval.evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retouch-train", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f".{name}", __package__).register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
