"""The benchmark CLI: options and table layout (it times nothing that is asserted)."""

import pytest
import torch

from retouch_core.apps import bench


def test_threads_option_runs_the_table_once_per_count_and_restores_torch(capsys):
    before = torch.get_num_threads()
    assert bench.main(["--sizes", "720p", "--repeats", "1", "--no-reference", "--threads", "1", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 720p")]
    assert [row.split(" | ")[0] for row in rows] == ["| 720p, 1 thread", "| 720p, 2 threads"]
    assert torch.get_num_threads() == before


def test_threads_must_be_positive():
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--sizes", "720p", "--threads", "0"])
    assert exit_info.value.code == 2
