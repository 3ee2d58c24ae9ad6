"""The parameter table: one definition that the docs, the sliders and the tools agree with."""

import re
from pathlib import Path

import pytest
import torch

from retouch_core.language.params import (
    AS_SHOT_KELVIN,
    BANDS,
    HUE_FIELDS,
    PARAM_GROUPS,
    PARAM_RANGES,
    PARAM_SPECS,
    SCALAR_FIELDS,
    clip_param,
    kelvin_to_temperature,
    temperature_to_kelvin,
    tensors_to_params,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "PARAMS.md"


def doc_rows() -> dict[str, tuple[str, float, float, str]]:
    """field -> (group, lo, hi, closing bracket) read from the table of docs/PARAMS.md."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| ([a-z ]+) \| (.+?) \| \[(-?[\d.]+), (-?[\d.]+)([\])]) \|", line)
        if not match:
            continue
        group, names, lo, hi, closing = match.groups()
        for name in re.findall(r"`([a-z_<>]+)`", names):
            expanded = [name.replace("<band>", band) for band in BANDS] if "<band>" in name else [name]
            for field in expanded:
                rows[field] = (group, float(lo), float(hi), closing)
    return rows


def test_the_table_is_what_the_doc_says():
    rows = doc_rows()
    assert set(rows) == set(SCALAR_FIELDS) and len(SCALAR_FIELDS) == 42
    for name, spec in PARAM_SPECS.items():
        assert rows[name] == (spec.group, spec.lo, spec.hi, ")" if spec.periodic else "]"), name
    assert HUE_FIELDS == {"split_shadow_hue", "split_highlight_hue"}
    assert PARAM_RANGES == {name: (spec.lo, spec.hi) for name, spec in PARAM_SPECS.items()}


def test_every_group_has_a_slider_label_and_fields_are_grouped_in_slider_order():
    names = [group.name for group in PARAM_GROUPS]
    assert names == ["lighting", "global colour", "colour bands", "split toning"]
    order = [names.index(spec.group) for spec in PARAM_SPECS.values()]
    assert order == sorted(order)  # a group's sliders sit together, groups in this order


def test_clip_wraps_angles_and_clips_the_rest():
    assert clip_param("split_shadow_hue", 370.0) == pytest.approx(10.0)
    assert clip_param("split_highlight_hue", -1e-17) == 0.0  # float modulo would give 360.0
    assert clip_param("contrast", 250.0) == 100.0 and clip_param("fade", -3.0) == 0.0
    assert PARAM_SPECS["split_shadow_hue"].contains(0.0) and not PARAM_SPECS["split_shadow_hue"].contains(360.0)
    assert not PARAM_SPECS["exposure"].contains(float("nan"))


def test_clamped_tensors_always_give_valid_params():
    # A hue a hair below 0 must wrap to 0, not to 360 (outside [0, 360)).
    params = tensors_to_params({"split_shadow_hue": torch.tensor([-1e-17], dtype=torch.float64)})[0]
    assert params.validate().split_shadow_hue == 0.0


def test_kelvin_and_temperature_are_inverse_mired_shifts():
    assert AS_SHOT_KELVIN == 6500.0
    assert kelvin_to_temperature(5200) == pytest.approx(1e6 / 6500 - 1e6 / 5200)
    for kelvin in (2000.0, 5200.0, 6500.0, 11000.0):
        assert temperature_to_kelvin(kelvin_to_temperature(kelvin)) == pytest.approx(kelvin)
