"""``retouch-train evaluate``: the InstantRetouch evaluation protocol for any retouching method.

What is evaluated (one or more methods per run, so baselines share one table):

* ``--model NAME_OR_PATH``: a named method of :data:`methods.NAMED_METHODS` (``identity``,
  ``oracle``, ...), ``teacher:DIR`` / ``xhat:FILE``, or a model loaded by
  ``retouch_core.models.load_retouch_model``;
* ``--command "TEMPLATE"``: any program, run once per triplet with ``{input}``, ``{output}`` and
  ``{instruction}`` replaced by shell-quoted values (do not quote the placeholders yourself);
* ``--outputs DIR``: images already rendered, named ``<record id>.png`` or like the input file.

On which triplets (input, target, instruction): ``--dataset DIR`` (``DIR/manifest.jsonl``) or
``--pairs INPUT_DIR TARGET_DIR`` (same file names; empty instruction = automatic enhancement);
see :mod:`.records`.

Real photos: ``--fivek DIR`` is the same protocol on the FiveK Expert C validation pairs
(``DIR/input`` -> method -> ``DIR/target``; the oracle, which fits the target, is refused), and
``--paraphrases FILE --photos ...`` is the paraphrase protocol (:mod:`.paraphrases`). Both add
identity and the classical baselines (:mod:`.baselines`) to the methods given.

What is measured per triplet and averaged per method: :mod:`.protocol` (fidelity to the input,
editing quality against the target, CLIP direction with ``--clip PATH``, direction accuracy
without CLIP, ``--timing`` at 720p, 1K, 2K and 4K).

``--device cuda|mps|cpu`` runs the models (their networks, prediction and full-resolution
slicing) on that device, synchronised around every timed call; the report names the device.

``--judge`` plugs in a VLM judge of SC and PQ (a command template or ``module:function``, see
:mod:`.judge`); the table then adds SC, PQ and O = sqrt(SC * PQ).

``--report DIR`` writes ``metrics.csv`` (per triplet), ``summary.md``, ``summary.json``
(:mod:`.report`), ``grid.png`` (input / outputs / target for up to 8 triplets) and
``metrics.png`` (bars) (:mod:`.plots`).

Cell values in the tables: a number; ``missing`` (metric weights absent locally); ``n/a`` (not
applicable, e.g. CLIP on instructions with no attribute, SSIM on an image smaller than its
window); ``—`` (not requested, e.g. no ``--clip`` or no ``--timing``).

In Python, :func:`.protocol.evaluate` runs one method, where a *retoucher* is any callable
``(image (1, 3, H, W) float in [0, 1], instruction: str) -> (1, 3, H, W)``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from ..cli import add_subcommand, run_subcommand
from .device import resolve_device
from .judge import load_judge
from .methods import NAMED_METHODS, PrecomputedOutputs, Retoucher, command_retoucher, model_retoucher
from .protocol import TIMING_SIZES, evaluate, load_learned_metrics
from .records import EvaluationError, Triplet, dataset_triplets, pair_triplets
from .report import format_markdown, write_report
from .summary import summarize

__all__ = ["add_arguments", "register", "run", "main"]

class _AddMethod(argparse.Action):
    """--model/--command/--outputs append (kind, value, label) to one list, keeping their order."""

    def __call__(self, parser, namespace, values, option_string=None):
        methods = list(getattr(namespace, "methods", None) or [])
        methods.append([self.dest, values, None])
        namespace.methods = methods


class _AddBaselines(argparse.Action):
    """--baselines appends every classical baseline that can run here (see baselines.py)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .baselines import available_baselines

        methods = list(getattr(namespace, "methods", None) or [])
        methods += [["model", name, None] for name in available_baselines()[0]]
        namespace.methods = methods


class _LabelLast(argparse.Action):
    """--label NAME names the method given just before it."""

    def __call__(self, parser, namespace, values, option_string=None):
        methods = getattr(namespace, "methods", None)
        if not methods:
            parser.error("--label must follow --model, --command or --outputs")
        methods[-1][2] = values


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    what = parser.add_argument_group("what to evaluate (repeat and mix; one table)")
    what.add_argument("--model", action=_AddMethod, metavar="NAME_OR_PATH",
                      help="; ".join(f"'{name}': {method.help}" for name, method in NAMED_METHODS.items())
                      + "; 'teacher:DIR', 'xhat:STUDENT_FILE' or a model for retouch_core.models.load_retouch_model")
    what.add_argument("--command", action=_AddMethod, metavar="TEMPLATE",
                      help="shell command with {input} {output} [{instruction}] (unquoted; values are quoted)")
    what.add_argument("--outputs", action=_AddMethod, metavar="DIR",
                      help="folder of outputs named <record id>.png or like the input file")
    what.add_argument("--label", action=_LabelLast, metavar="NAME", help="table name of the method given just before")
    what.add_argument("--baselines", action=_AddBaselines, nargs=0,
                      help="the classical baselines (autocontrast, levels-grayworld, autolevels when installed); "
                           "--fivek and --paraphrases add them and identity by themselves")
    what.add_argument("--no-baselines", action="store_true",
                      help="--fivek / --paraphrases: do not add identity and the classical baselines")

    data = parser.add_argument_group("triplets")
    src = data.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="DIR", help="dataset folder with manifest.jsonl")
    src.add_argument("--pairs", nargs=2, metavar=("INPUT_DIR", "TARGET_DIR"), help="two folders of same-named images")
    src.add_argument("--fivek", metavar="DIR",
                     help="real-photo protocol: DIR/input -> method -> DIR/target (the FiveK Expert C validation "
                          "pairs, e.g. ../shared/data/fivek_expertc); no method sees the target")
    src.add_argument("--paraphrases", metavar="FILE",
                     help="paraphrase protocol (e.g. training/eval/paraphrases.yaml) on the --photos")
    data.add_argument("--photos", nargs="+", metavar="PATH",
                      help="--paraphrases: real photos (files, or folders of images)")
    data.add_argument("--photo-size", type=int, default=512, metavar="PX",
                      help="--paraphrases: photos are downscaled to this long side (default: 512)")
    data.add_argument("--split", default="heldout", help="manifest split ('all' for every record; default: heldout)")
    data.add_argument("--subset", choices=("auto", "style", "param"), help="manifest subset (default: all)")
    data.add_argument("--limit", type=int, help="first N triplets only")
    data.add_argument("--instruction", default="", help="instruction for every --pairs triplet (default: empty = auto)")

    opts = parser.add_argument_group("metrics and report")
    opts.add_argument("--clip", metavar="PATH",
                      help="local open_clip model (folder or weights) for the CLIP direction score")
    opts.add_argument("--clip-arch", metavar="NAME",
                      help="open_clip architecture when PATH has no open_clip_config.json")
    opts.add_argument("--weights-dir", action="append", metavar="DIR",
                      help="folder holding LPIPS/DISTS backbone weights (default: torch hub checkpoints)")
    opts.add_argument("--timing", action="store_true", help="median ms at 720p, 1K, 2K, 4K on the first input")
    opts.add_argument("--timing-repeats", type=int, default=3, metavar="N")
    opts.add_argument("--low-res", type=int, default=256, metavar="PX",
                      help="long side of the copy that teacher: and xhat: methods edit (default: 256)")
    opts.add_argument("--command-timeout", type=float, metavar="SECONDS", help="per-image limit for --command")
    opts.add_argument("--device", default="cpu", metavar="cpu|cuda|mps",
                      help="where models and slicing run (default: cpu); timings synchronise it")
    opts.add_argument("--judge", metavar="TEMPLATE|MODULE:FUNCTION",
                      help="VLM judge of SC / PQ: a command with {input} {output} {instruction} printing "
                           "SC and PQ, or a Python callable (input, output, instruction) -> (SC, PQ)")
    opts.add_argument("--judge-timeout", type=float, metavar="SECONDS", help="per-image limit for a --judge command")
    opts.add_argument("--report", metavar="DIR", help="write metrics.csv, summary.md/json and PNG plots here")
    opts.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(methods=None, func=run)
    return parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand (see training/cli.py)."""
    return add_subcommand(subparsers, "evaluate",
                          "InstantRetouch evaluation protocol (fidelity, editing, CLIP, direction, runtime)",
                          __doc__, add_arguments)


def _method_name(kind: str, value: str, label: str | None) -> str:
    if label:
        return label
    if kind == "command":
        return "command"
    if kind == "model" and value.startswith(("teacher:", "xhat:")):
        prefix, _, value = value.partition(":")
        return f"{prefix}:{Path(value).stem or Path(value).name}"
    path = Path(value)
    return (path.stem if kind == "model" and path.suffix else path.name) or value


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _build_method(kind: str, value: str, timeout: float | None, low_res: int = 256,
                  device: str = "cpu") -> Retoucher | PrecomputedOutputs:
    if kind == "model":
        return model_retoucher(value, low_res, device)
    if kind == "command":
        return command_retoucher(value, timeout)
    if not Path(value).is_dir():
        raise EvaluationError(f"--outputs: not a folder: {value}")
    return PrecomputedOutputs(Path(value))


def _with_reference_methods(methods: list[list]) -> list[list]:
    """identity first, then the classical baselines that can run here, then the given methods
    (each once: a method already named is not added again)."""
    from .baselines import available_baselines

    named = {value for kind, value, _ in methods if kind == "model"}
    reference = [["model", name, None] for name in ["identity", *available_baselines()[0]] if name not in named]
    return reference + methods


def _load_triplets(args) -> tuple[list[Triplet], str]:
    if args.fivek:
        root = Path(args.fivek)
        return pair_triplets(root / "input", root / "target", "", args.limit), f"FiveK Expert C, {args.fivek}"
    if args.dataset:
        return dataset_triplets(args.dataset, args.split, args.subset, args.limit), f"{args.dataset} ({args.split})"
    input_dir, target_dir = args.pairs
    return pair_triplets(input_dir, target_dir, args.instruction, args.limit), f"{input_dir} → {target_dir}"


def run(args: argparse.Namespace) -> int:
    """Entry point of ``retouch-train evaluate``; prints the summary table, writes --report."""
    if (args.fivek or args.paraphrases) and not args.no_baselines:
        args.methods = _with_reference_methods(args.methods or [])
    if not args.methods:
        print("error: give at least one of --model, --command, --outputs (e.g. --model identity)", file=sys.stderr)
        return 2
    if args.fivek and any(kind == "model" and value == "oracle" for kind, value, _ in args.methods):
        print("error: --fivek: the oracle fits the target, and no method may see the validation targets",
              file=sys.stderr)
        return 2
    if args.paraphrases:
        from .paraphrases import run_cli

        return run_cli(args, _unique([_method_name(*m) for m in args.methods]))
    try:
        device = resolve_device(args.device)
        triplets, source = _load_triplets(args)
        names = _unique([_method_name(*m) for m in args.methods])
        methods = [
            (name, _build_method(kind, value, args.command_timeout, args.low_res, device))
            for name, (kind, value, _) in zip(names, args.methods)
        ]
        judge = load_judge(args.judge, args.judge_timeout) if args.judge else None
        scorer = None
        if args.clip:
            from retouch_core.language.clip_score import load_clip

            scorer = load_clip(args.clip, args.clip_arch)
        learned = load_learned_metrics(args.weights_dir)
        results = [
            evaluate(
                method, triplets, name=name, clip=scorer, learned=learned,
                timing_sizes=TIMING_SIZES if args.timing else None, timing_repeats=args.timing_repeats,
                progress=not args.no_progress, judge=judge, device=device,
            )
            for name, method in methods
        ]
    except (EvaluationError, FileNotFoundError, subprocess.TimeoutExpired) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summaries = [summarize(r) for r in results]
    print(format_markdown(summaries, f"Evaluation — {source}"))
    if args.report:
        written = write_report(results, args.report, source)
        print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m retouch_training.eval.evaluate ...`` (same options as ``retouch-train evaluate``)."""
    return run_subcommand("evaluate", __doc__, add_arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
