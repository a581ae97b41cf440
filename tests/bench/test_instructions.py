"""`python -m creditgate.bench.instructions`: instructions per pair against the floor's, counted
by valgrind (BENCHMARKS.md). valgrind takes minutes per stage, so here every stage's process
runs for real but is counted by a stand-in for valgrind that reports, as callgrind does, a count
made from the pairs it was asked to run: the stages must answer every pair as the API does (a
failed call raises, and the process fails), a `--before` tree must be the one run, and the
arithmetic must turn two counts into one pair's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from creditgate.bench.instructions import run_instructions

STAND_IN = """
import subprocess, sys
command = sys.argv[1:]
stage_at = command.index("--run") + 1
pairs = int(command[stage_at + 1])
done = subprocess.run(command, capture_output=True)
sys.stderr.buffer.write(done.stderr)
marker = "before" if "before-tree" in __import__("os").environ.get("PYTHONPATH", "") else "this"
factor = {"floor: db": 1000, "floor: app": 2000, "creditgate: db": 3000, "creditgate: app": 5000}
count = 7_000_000 + pairs * factor[command[stage_at]] * (2 if marker == "before" else 1)
sys.stderr.write(f"==1== Collected : {count}\\n")
sys.exit(done.returncode)
"""


def test_every_stage_runs_and_two_counts_make_one_pairs(
    postgres_server: str, tmp_path: Path
) -> None:
    # This tree as the earlier one; a path that is not there marks it for the stand-in.
    before = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), "before-tree"])
    stand_in = tmp_path / "count.py"
    stand_in.write_text(STAND_IN)
    result = run_instructions(
        postgres_server, few=2, many=6, before=before, counter=[sys.executable, str(stand_in)]
    )
    assert result["instructions_per_pair"] == {
        "floor: db": 1000,
        "floor: app": 2000,
        "creditgate: db": 3000,
        "creditgate: app": 5000,
        "before: db": 6000,
        "before: app": 10000,
    }
    assert result["ratio_to_floor"] == {"db": 3.0, "app": 2.5}
    assert result["ratio_to_before"] == {"db": 0.5, "app": 0.5}


def test_the_two_runs_must_differ_and_come_in_order() -> None:
    for few, many in [(20, 20), (120, 20), (0, 20)]:
        with pytest.raises(ValueError, match="few < many"):
            run_instructions(None, few=few, many=many, counter=[])


def test_a_stage_that_fails_says_which(postgres_server: str, tmp_path: Path) -> None:
    failing = tmp_path / "count.py"
    failing.write_text("import sys; sys.stderr.write('no such thing'); sys.exit(3)\n")
    with pytest.raises(RuntimeError, match="floor: db"):
        run_instructions(postgres_server, few=1, many=2, counter=[sys.executable, str(failing)])
