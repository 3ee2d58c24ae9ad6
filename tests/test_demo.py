"""The README's first command: the demo writes a before/after sheet and full-resolution outputs."""

from PIL import Image

from retouch_core.apps.demo import main


def test_demo_writes_sheet_and_outputs(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--instructions", "", "warmer"]) == 0
    sheet = Image.open(tmp_path / "before_after.png")
    assert sheet.width > 2.5 * sheet.height  # before + two results side by side
    assert Image.open(tmp_path / "after_1.png").size == (512, 512)  # full resolution of the photo
    assert "read as style {'warmth': 1.0}" in capsys.readouterr().out
