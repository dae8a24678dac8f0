"""Grading beyond one machine, for real (slow tier: each test grades week 1 for real).

* 12 submissions graded as 3 shards (``--shard K/3``) and merged give, byte for byte,
  the ``grades.csv`` of one run, the same nbgrader gradebook grades and the same
  Gradescope files;
* ``course gradescope-package --week 1``, unpacked into a temporary ``/autograder``
  laid out as Gradescope's: ``setup.sh`` installs into a fresh virtual environment from
  uv's cache (offline), ``run_autograder`` grades the reference (full marks for the code)
  and the untouched lab (0 coded points), and each ``results.json`` follows Gradescope's
  schema (``tests/gradescope_results.schema.json``) and shows no hidden-test source;
* ``autograder/k8s/grade-job.yaml`` is valid Kubernetes, strictly, from 1.25 to 1.37, and
  the README's GitHub Actions matrix is a valid workflow that shards and merges the same way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO
from submissions import SAMPLES, hidden_test_lines

from autograder.cli import main
from autograder.gradescope import package

pytestmark = pytest.mark.slow

GOLDEN = json.loads((REPO / "tests/golden/week01.json").read_text())
SCHEMA = json.loads((REPO / "tests/gradescope_results.schema.json").read_text())
#: The cheap golden samples (no endless loop): 12 submissions cycle through them.
KINDS = ("reference", "untouched", "blank", "partial", "syntax-error")
BIN = Path(sys.executable).parent
#: Limits for a loaded machine: no honest cell or test may run out of time (a grade must
#: not depend on the load), so one run and the shards get the same grades.
LOADED = ["--cell-timeout", "120", "--test-timeout", "300"]


def _class(root: Path, count: int = 12) -> list[Path]:
    return [SAMPLES[KINDS[i % len(KINDS)]](root / f"{KINDS[i % len(KINDS)]}-{i:02d}") for i in range(count)]  # fmt: skip


def _grades(db: Path) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}", "mlops-roadmap") as gb:
        return {
            (s.id, g.name): (g.auto_score, g.manual_score, g.needs_manual_grade)
            for s in gb.students
            for g in gb.find_submission_notebook("lab", "week01", s.id).grades
        }


def _gradescope(out: Path) -> dict:
    """Each student's Gradescope scores (outputs name the run's scratch folders: left out)."""
    found = {}
    for path in sorted(out.glob("*/week01-results.json")):
        data = json.loads(path.read_text())
        jsonschema.validate(data, SCHEMA)
        tests = [(t["name"], t["score"], t["max_score"], t["status"], t["visibility"]) for t in data["tests"]]  # fmt: skip
        found[path.parent.name] = (data["score"], tests)
    return found


def test_three_shards_merged_give_the_grades_of_one_run(tmp_path):
    subs = [str(s) for s in _class(tmp_path / "class")]
    common = ["--week", "1", "--jobs", "2", "--gradescope", "--quiet", *LOADED]
    assert main(["grade", *subs, *common, "--out", str(tmp_path / "one")]) == 0
    for k in range(3):
        out = str(tmp_path / f"shard-{k}")
        assert main(["grade", *subs, *common, "--shard", f"{k}/3", "--out", out]) == 0
    shards = [str(tmp_path / f"shard-{k}") for k in range(3)]
    assert main(["merge", *shards, "--out", str(tmp_path / "class-grades")]) == 0

    one, merged = tmp_path / "one", tmp_path / "class-grades"
    assert (merged / "grades.csv").read_bytes() == (one / "grades.csv").read_bytes()
    rows = (one / "grades.csv").read_text().splitlines()[1:]
    assert len(rows) == 12
    for row in rows:  # and they are the golden grades
        student, score, _ = row.split(",")
        assert float(score) == GOLDEN[student.rsplit("-", 1)[0]]["score"], row
    assert _grades(merged / "nbgrader/gradebook.db") == _grades(one / "nbgrader/gradebook.db")
    assert _gradescope(merged) == _gradescope(one) and len(_gradescope(one)) == 12
    graded = sorted(p.name for p in (merged / "nbgrader/autograded").iterdir())
    assert graded == sorted(Path(s).name for s in subs)
    # A shard graded again from an edited solutions/ would not merge: see the fast tier.


def _unpack(zip_path: Path, root: Path) -> None:
    """What Gradescope does with the zip: /autograder/source, scripts executable."""
    source = root / "source"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(source)
        for info in archive.infolist():
            os.chmod(source / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copyfile(source / "run_autograder", root / "run_autograder")
    os.chmod(root / "run_autograder", 0o755)


def test_gradescope_package_grades_both_ways_in_a_gradescope_layout(tmp_path):
    root = tmp_path / "autograder"
    _unpack(package(1, tmp_path / "zip"), root)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        "AUTOGRADER_ROOT": str(root),
        "COURSE_VENV": str(tmp_path / "venv"),
        "UV_OFFLINE": "1",  # the already-built environment: uv's cache, no network
        "UV_COMPILE_BYTECODE": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # its uv, at the course's version
        "COURSE_GRADE_ARGS": " ".join(LOADED),
    }
    setup = subprocess.run(
        ["bash", str(root / "source/setup.sh")], env=env, capture_output=True, text=True, timeout=1200
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr[-3000:]
    assert (tmp_path / "venv/bin/course").is_file()
    hidden = [line for line in hidden_test_lines() if len(line.strip()) > 20]
    scores = {}
    for kind in ("reference", "untouched"):
        shutil.rmtree(root / "submission", ignore_errors=True)
        shutil.rmtree(root / "results", ignore_errors=True)
        SAMPLES[kind](root / "submission")
        run = subprocess.run(
            [str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True, timeout=1800
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        text = (root / "results/results.json").read_text()
        results = json.loads(text)
        jsonschema.validate(results, SCHEMA)
        assert "leaderboard" not in results
        assert not [line for line in hidden if line.strip() in text], kind
        tests = results["tests"]
        assert {t["visibility"] for t in tests if t["name"].startswith("hidden/")} == {"after_published"}  # fmt: skip
        failed = [(t["name"], t["output"][:300]) for t in tests if t["status"] != "passed"]
        coded = [t for t in tests if t["name"] != "task6_written"]
        scores[kind] = (results["score"], sum(t["score"] for t in coded), sum(t["max_score"] for t in coded))  # fmt: skip
        if kind == "reference":
            assert results["score"] == GOLDEN["reference"]["score"], failed
    assert scores["reference"][1] == scores["reference"][2]  # every coded point
    assert scores["untouched"][:2] == (0, 0)  # no coded point

    shutil.rmtree(root / "submission")
    (root / "submission").mkdir()
    (root / "submission/lab.ipynb").write_text("{}")  # a notebook alone, not a checkout
    run = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    results = json.loads((root / "results/results.json").read_text())
    jsonschema.validate(results, SCHEMA)
    assert results["score"] == 0 and "no labs/ folder" in results["output"]


@pytest.mark.parametrize("version", ["1.25", "1.29", "1.33", "1.37"])
def test_grade_job_is_valid_kubernetes_strictly(version):
    from mlpipe.manifests import validate_file

    kinds = [d["kind"] for d in validate_file(REPO / "autograder/k8s/grade-job.yaml", version)]
    assert kinds == ["NetworkPolicy", "Job"]


def test_readme_matrix_workflow_is_valid_and_shards_like_the_job(tmp_path):
    readme = (REPO / "README.md").read_text()
    [text] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "matrix:" in b and "course merge" in b]  # fmt: skip
    workflow = tmp_path / "grade.yml"
    workflow.write_text(text)
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import yaml

    jobs = yaml.safe_load(text)["jobs"]
    shards = jobs["grade"]["strategy"]["matrix"]["shard"]
    steps = " ".join(step.get("run", "") for step in jobs["grade"]["steps"])
    assert shards == list(range(len(shards)))
    assert f"--shard ${{{{ matrix.shard }}}}/{len(shards)}" in steps
    assert "course merge" in " ".join(step.get("run", "") for step in jobs["merge"]["steps"])
