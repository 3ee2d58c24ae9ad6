"""Render a style of the instruction language as a ``.cube`` LUT, reproducibly, bit for bit.

    python -m retouch_core.apps.style_lut cinematic --size 17 --folder luts

writes ``luts/instantretouch_cinematic.cube``, the LUT the ComfyUI pack ships (run it from the
pack folder; ``tests/test_nodes_luts.py`` checks that this command gives the committed file).
The style's attribute recipe (:mod:`retouch_core.language.attributes`) is turned into renderer
parameters and the renderer (:mod:`retouch_core.language.render`) is sampled on the lattice in
float64 (:func:`~retouch_core.engine.lut.edit_to_lut`), so the 6 printed decimals do not depend
on the machine's float32 rounding. Styles with clarity (a spatial edit) cannot be a LUT.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..engine.lut import edit_to_lut, format_cube
from ..formats.atomic import atomic_write
from ..language.attributes import STYLE, default_bank, recipe_to_params
from ..language.render import render

PREFIX = "instantretouch_"
COMMAND = "python -m retouch_core.apps.style_lut"


def lut_styles() -> list[str]:
    """The styles a LUT can hold: every style attribute without clarity.

    Example:
        >>> lut_styles()[:3]
        ['cinematic', 'vintage', 'film']
        >>> left_out = [a.name for a in default_bank().by_group(STYLE) if a.name not in lut_styles()]
        >>> "hdr_look" in left_out, all("clarity" in recipe_to_params({name: 1.0}) for name in left_out)
        (True, True)
    """
    return [a.name for a in default_bank().by_group(STYLE) if "clarity" not in recipe_to_params({a.name: 1.0})]


def style_cube_text(style: str, size: int = 17) -> str:
    """The ``.cube`` text of ``style`` on a ``size^3`` lattice, with a header naming its source.

    Example:
        >>> lines = style_cube_text("cinematic", size=2).splitlines()
        >>> lines[4].split(": ")[1]  # the header ends with the command that remakes the file
        'python -m retouch_core.apps.style_lut cinematic --size 2 --folder luts'
        >>> lines[5:7], len(lines[9:])  # then the .cube itself: 2^3 = 8 lattice points
        (['TITLE "InstantRetouch cinematic (2^3)"', 'LUT_3D_SIZE 2'], 8)
        >>> black = render(torch.zeros(1, 3, 1, 1, dtype=torch.float64), recipe_to_params({"cinematic": 1.0}))
        >>> lines[9] == " ".join(f"{v:.6f}" for v in black.flatten().tolist())  # the first point: black
        True
        >>> style_cube_text("hdr_look")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: 'hdr_look' is not a style a LUT can hold; choose one of cinematic, vintage, ...
    """
    if style not in lut_styles():
        raise ValueError(f"{style!r} is not a style a LUT can hold; choose one of {', '.join(lut_styles())}")
    params = recipe_to_params({style: 1.0})
    lut = edit_to_lut(lambda x: render(x, params), size, dtype=torch.float64)
    recipe = ", ".join(f"{k}={v:g}" for k, v in params.items())
    header = (
        f'# InstantRetouch "{style}" style as a {size}^3 3D LUT, made with the pack\'s own code: the\n'
        f"# attribute recipe of retouch_core/language/attributes.py, rendered by\n"
        f"# retouch_core/language/render.py in float64. Apache-2.0, as the pack (LICENSE).\n"
        f"# Recipe: {recipe}\n"
        f"# Regenerate it bit for bit from the pack folder: {COMMAND} {style} --size {size} --folder luts\n"
    )
    return header + format_cube(lut, title=f"InstantRetouch {style} ({size}^3)")


def write_style_cube(style: str, folder: str | Path, size: int = 17) -> Path:
    """Write ``folder/instantretouch_<style>.cube`` (LF line ends on every system).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_style_cube("sepia", folder, size=3)
        ...     data = path.read_bytes()
        >>> path.name, data == style_cube_text("sepia", 3).encode(), b"\\r" in data
        ('instantretouch_sepia.cube', True, False)
    """
    text = style_cube_text(style, size).encode("utf-8")
    return atomic_write(Path(folder) / f"{PREFIX}{style}.cube", lambda tmp: tmp.write_bytes(text))


def main(argv=None) -> int:
    """The command line (module docstring): writes the LUT, prints its path, returns 0.

    Example:
        >>> import contextlib, io, tempfile
        >>> with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()) as printed:
        ...     status = main(["film", "--size", "3", "--folder", folder])
        ...     written = Path(printed.getvalue().strip()).read_text()
        >>> status, written == style_cube_text("film", 3)
        (0, True)
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("style", help="a style attribute without clarity, e.g. cinematic")
    parser.add_argument("--size", type=int, default=17, help="lattice size N (default 17)")
    parser.add_argument("--folder", default="luts", help="output folder (default: luts)")
    args = parser.parse_args(argv)
    print(write_style_cube(args.style, args.folder, args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
