"""A class run that is interrupted loses no finished grade and resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO
from submissions import SAMPLES

pytestmark = pytest.mark.slow

GOLDEN = json.loads((REPO / "tests/golden/week01.json").read_text())
NAMES = ("untouched", "blank", "partial")


def _start(subs, out):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-m", "autograder.cli", "grade", *map(str, subs), "--week", "1"]
    cmd += ["--out", str(out), "--jobs", "1", "--quiet", "--cell-timeout", "10"]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _reports(out):
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/week01.json")}


def _wait_for(out, count, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while len(_reports(out)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_interrupted_runs_resume_and_end_with_the_uninterrupted_csv(tmp_path):
    subs = [SAMPLES[name](tmp_path / "subs" / name) for name in NAMES]
    out = tmp_path / "grades"
    killed = _start(subs, out)  # killed outright after its first report
    _wait_for(out, 1, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    first = _reports(out)
    interrupted = _start(subs, out)  # Ctrl-C after one more report
    _wait_for(out, 2, interrupted)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130 and "finished reports are kept" in err
    second = _reports(out)
    assert {k: second[k] for k in first} == first  # nothing finished was graded again
    for name in second:
        json.loads((out / name / "week01.json").read_text())  # whole files only
    final = _start(subs, out)
    stdout, _ = final.communicate(timeout=600)
    assert final.returncode == 0, stdout
    third = _reports(out)
    assert {k: third[k] for k in second} == second
    expected = ["student,week01,total"] + [
        f"{n},{GOLDEN[n]['score']:g},{GOLDEN[n]['score']:g}" for n in sorted(NAMES)
    ]
    assert (out / "grades.csv").read_text().splitlines() == expected
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'nbgrader/gradebook.db'}", "mlops-roadmap") as gb:
        for name in NAMES:
            report = json.loads((out / name / "week01.json").read_text())
            nb = sum(t["score"] for t in report["tests"] if t["source"] == "notebook")
            assert gb.find_submission("week01", name).score == pytest.approx(nb)
