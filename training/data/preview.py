"""``retouch-train preview``: a contact sheet (input | target, instruction underneath) of a dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli import add_subcommand, run_subcommand

__all__ = ["contact_sheet", "register", "main"]

_BACKGROUND = (250, 250, 250)
_INK = (20, 20, 20)
_MUTED = (110, 110, 110)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _label(record: dict[str, Any]) -> tuple[str, str]:
    """(header, body) text of one record."""
    header = f"{record['subset']} | {record['split']} | {record['id']} | {record['inverse_psnr']:.1f} dB"
    if record["subset"] == "auto":
        body = f"(no instruction) restore: {record.get('restore_instruction') or ''}"
    else:
        body = record["instruction"]
    return header, body


def contact_sheet(root: str | Path, count: int = 12, seed: int = 0, columns: int = 3, thumb: int = 240,
                  split: str = "all") -> Any:
    """PIL image: ``count`` sampled records, each as input | target with its instruction below."""
    import numpy as np
    from PIL import Image, ImageDraw

    from .manifest import read_manifest

    records = read_manifest(root, split)
    if not records:
        raise ValueError(f"no records in {root} (split {split})")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(records), size=min(count, len(records)), replace=False).tolist())
    font, small = _font(15), _font(12)
    pad, cell_w = 10, 2 * thumb + 10
    scratch = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    blocks = []
    for i in chosen:
        header, body = _label(records[i])
        lines = _wrap(scratch, body, font, cell_w)
        blocks.append((records[i], header, lines))
    line_h = 19
    text_h = max(len(lines) for _, _, lines in blocks) * line_h + 22
    cell_h = thumb + 18 + text_h
    rows = (len(blocks) + columns - 1) // columns
    sheet = Image.new("RGB", (pad + columns * (cell_w + pad), pad + rows * (cell_h + pad)), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for n, (record, header, lines) in enumerate(blocks):
        x0 = pad + (n % columns) * (cell_w + pad)
        y0 = pad + (n // columns) * (cell_h + pad)
        for k, (key, name) in enumerate((("input", "input"), ("target", "target"))):
            with Image.open(Path(root) / record[key]) as im:
                im = im.convert("RGB")
                im.thumbnail((thumb, thumb))
                sheet.paste(im, (x0 + k * (thumb + 10) + (thumb - im.width) // 2, y0 + (thumb - im.height) // 2))
            draw.text((x0 + k * (thumb + 10), y0 + thumb + 2), name, fill=_MUTED, font=small)
        y = y0 + thumb + 18
        draw.text((x0, y), header, fill=_MUTED, font=small)
        y += 18
        for line in lines:
            draw.text((x0, y), line, fill=_INK, font=font)
            y += line_h
    return sheet


def _add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--dataset", required=True, metavar="DIR", help="folder made by make-dataset")
    p.add_argument("--out", required=True, metavar="PNG")
    p.add_argument("--count", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--columns", type=int, default=3)
    p.add_argument("--thumb", type=int, default=240, help="thumbnail box in px")
    p.add_argument("--split", choices=("all", "train", "heldout"), default="all")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        sheet = contact_sheet(args.dataset, args.count, args.seed, args.columns, args.thumb, args.split)
    except (FileNotFoundError, ValueError) as exc:
        print(f"preview: {exc}", file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``preview`` to the ``retouch-train`` command."""
    return add_subcommand(subparsers, "preview", "contact sheet of a made dataset", __doc__, _add_arguments)


def main(argv: list[str] | None = None) -> int:
    return run_subcommand("preview", __doc__, _add_arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
