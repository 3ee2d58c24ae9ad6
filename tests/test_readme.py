"""The README's front door stays true: CI runs exactly its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", setup)


def test_two_setup_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "retouch-demo" in demo and "pytest" in tests
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert tests in ci_lines


def test_library_use_example_runs(tmp_path, monkeypatch):
    """The README's library example is code, not prose: it must run as written."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Library use.*?```python\n(.+?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (Library use)", "exec"), namespace)
    assert namespace["retouched"].shape == namespace["image"].shape
    assert (tmp_path / "warm.safetensors").is_file()


def test_node_table_lists_every_node():
    """Every node's display name (from its schema in nodes/comfy_nodes.py) has a row in the table."""
    source = (ROOT / "nodes" / "comfy_nodes.py").read_text()
    names = re.findall(r'node_id="InstantRetouch\w+",\s*display_name="([^"]+)"', source)
    assert len(names) == source.count("io.Schema(")
    table = (ROOT / "README.md").read_text().split("### Nodes", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| ")]
    missing = [name for name in names if not any(name in row for row in rows)]
    assert not missing, missing
