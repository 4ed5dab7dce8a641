"""bench/scale_out.py's stream followers part runs in one command and reports what its
followers received (a smoke test: no figure is judged, only that the run works)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_followers_part_runs_and_reports_the_lines_followers_received(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "bench/scale_out.py",
            "--processes",
            "2",
            "--parts",
            "followers",
            "--followers",
            "4",
            "--stream-jobs",
            "2",
            "--window",
            "1",
            "--settle",
            "0.5",
            "--grace",
            "1",
        ],
        cwd=ROOT,
        env={**os.environ, "CORTEX_BENCH_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    path = run.stdout.strip().splitlines()[-1].removeprefix("results: ")
    document = json.loads(Path(path).read_text())
    Path(path).unlink()
    (level,) = document["runs"][0]["followers"]["levels"]
    assert level["followers"] == level["open"] == 4
    assert level["errors"] == 0
    assert sum(level["followers_per_worker"]) == 4
    assert len(level["worker_cores"]) == 2
    assert level["lines_delivered"] > 0
