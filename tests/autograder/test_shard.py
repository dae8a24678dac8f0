"""Grading beyond one machine, the fast parts: slices, merging and its refusals, the
Gradescope results and package, the Kubernetes Job's shape.

Everything here runs on synthetic reports (no grading); the real runs are in
``tests/e2e/test_shard_class.py`` (slow tier): 12 submissions as 3 shards and as 1 run,
the Gradescope package's ``setup.sh`` and ``run_autograder``, strict validation of the Job.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import REPO

from autograder import CourseError
from autograder.cli import main
from autograder.config import WEEKS
from autograder.grade import Submission
from autograder.gradescope import collect, package
from autograder.merge import (
    MERGED_FILE,
    Shard,
    merge,
    parse_shard,
    select_shard,
    write_shard_file,
)
from autograder.report import Report, gradescope_results, write_class_csv, write_report
from autograder.report import TestResult as Item
from autograder.sandbox import Limits

SCHEMA = json.loads((REPO / "tests/gradescope_results.schema.json").read_text())
JOB = REPO / "autograder/k8s/grade-job.yaml"
HIDDEN_SOURCE = "assert secret_helper(model) == 42  # the hidden check"


def _subs(names) -> list[Submission]:
    return [Submission(Path(f"/class/{n}"), n) for n in names]


def _report(student: str, score: float, digest: str = "d1", week: int = 1) -> Report:
    return Report(
        student=student,
        week=week,
        hidden_tests=True,
        tests=[
            Item(
                "test_train.py::test_split",
                "pytest",
                score,
                2.0,
                "passed" if score else "failed",
                "" if score else "E assert 1 == 2",
            ),  # fmt: skip
            Item(
                "hidden/test_h.py::test_h",
                "pytest",
                0.0,
                1.0,
                "failed",
                f"{HIDDEN_SOURCE}\nE AssertionError: 41 != 42",
                hidden=True,
            ),  # fmt: skip
        ],
        source_digest=digest,
    )


def _shards(tmp: Path, names: list[str], count: int, digest: str = "d1") -> list[Path]:
    """``count`` shard folders of the class ``names``, each with its reports written."""
    everyone = _subs(names)
    outs = []
    for index in range(count):
        out = tmp / f"shard-{index}"
        out.mkdir(parents=True)
        mine = select_shard(everyone, Shard(index, count))
        write_shard_file(out, Shard(index, count), everyone, [(s, WEEKS[1]) for s in mine])
        for i, sub in enumerate(mine):
            write_report(_report(sub.student, float(i % 3), digest), out)
        write_class_csv(out)
        outs.append(out)
    return outs


# --- slices ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [("0/3", Shard(0, 3)), (" 2 / 3 ", Shard(2, 3)), ("0/1", Shard(0, 1))])  # fmt: skip
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/3", "1", "-1/3", "a/b", "1/0", ""])
def test_parse_shard_refuses_in_one_sentence(text):
    with pytest.raises(CourseError, match=r"^--shard '.*' is not K/N with 0 <= K < N"):
        parse_shard(text)


def test_course_grade_refuses_a_bad_shard_with_exit_2(tmp_path, capsys):
    (tmp_path / "alice/labs").mkdir(parents=True)
    assert main(["grade", str(tmp_path / "alice"), "--shard", "4/4", "--out", str(tmp_path / "g")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shard '4/4'" in err[0]
    assert not (tmp_path / "g").exists()


def test_slices_partition_the_class_deterministically_and_evenly():
    names = [f"s{i:02d}" for i in range(40)]
    subs = _subs(names)
    shuffled = _subs(reversed(names))
    slices = [select_shard(subs, Shard(k, 3)) for k in range(3)]
    assert sorted(s.student for part in slices for s in part) == names  # each student once
    assert sorted(len(part) for part in slices) == [13, 13, 14]
    for k in range(3):  # by name, not by the order given
        assert select_shard(shuffled, Shard(k, 3)) == slices[k]
    assert select_shard(subs, None) == subs


def test_more_shards_than_students_leaves_empty_slices():
    subs = _subs(["a", "b"])
    assert [len(select_shard(subs, Shard(k, 4))) for k in range(4)] == [1, 1, 0, 0]


def test_a_shard_folder_refuses_another_shard(tmp_path):
    subs = _subs(["a", "b", "c"])
    write_shard_file(tmp_path, Shard(0, 3), subs, [])
    write_shard_file(tmp_path, Shard(0, 3), subs, [])  # the same shard again: fine
    with pytest.raises(CourseError, match="already holds shard 0/3 .*its own --out folder"):
        write_shard_file(tmp_path, Shard(1, 3), subs, [])


# --- merging --------------------------------------------------------------------------------


def test_merge_gives_the_class_csv_of_one_folder(tmp_path):
    names = [f"student{i:02d}" for i in range(12)]
    outs = _shards(tmp_path, names, 3)
    done = merge(outs, tmp_path / "class")
    assert (done.students, done.reports, len(done.pieces)) == (12, 12, 3)
    one = tmp_path / "one"
    for out in outs:  # the same reports in one folder, as one run writes them
        for path in out.glob("*/week01.json"):
            write_report(Report.from_dict(json.loads(path.read_text())), one)
    assert done.csv.read_bytes() == write_class_csv(one).read_bytes()
    assert sorted(p.name for p in done.dest.iterdir() if p.is_dir()) == names
    summary = json.loads((done.dest / MERGED_FILE).read_text())
    assert summary["source_digests"] == {"week01": "d1"}
    merge(outs, tmp_path / "class")  # an earlier merge is replaced
    assert not list(tmp_path.glob(".class.*"))


def test_merge_refuses_a_missing_shard(tmp_path):
    outs = _shards(tmp_path, ["a", "b", "c", "d"], 3)
    with pytest.raises(CourseError, match=r"^Shard 1/3 is missing: give the --out folder of every shard, 0 to 2\.$"):  # fmt: skip
        merge([outs[0], outs[2]], tmp_path / "class")
    assert not (tmp_path / "class").exists()


def test_merge_refuses_a_shard_given_twice(tmp_path):
    outs = _shards(tmp_path, ["a", "b", "c"], 2)
    with pytest.raises(CourseError, match=r"^Shard 0/2 is given twice"):
        merge([outs[0], outs[0], outs[1]], tmp_path / "class")


def test_merge_refuses_a_duplicate_student(tmp_path):
    outs = _shards(tmp_path, ["a", "b", "c"], 2)
    write_report(_report("a", 1.0), outs[1])  # 'a' belongs to shard 0
    with pytest.raises(CourseError, match=r"^Student 'a' is graded in both shard 0/2 .* and shard 1/2 .*one folder only\.$"):  # fmt: skip
        merge(outs, tmp_path / "class")


def test_merge_refuses_shards_of_different_versions_of_solutions(tmp_path):
    outs = _shards(tmp_path, ["a", "b", "c"], 2)
    write_report(_report("b", 1.0, digest="d2"), outs[1])
    with pytest.raises(CourseError, match=r"^Week 1 was graded from different versions of solutions/"):  # fmt: skip
        merge(outs, tmp_path / "class")


def test_merge_refuses_an_unfinished_shard(tmp_path):
    outs = _shards(tmp_path, ["a", "b", "c", "d"], 2)
    (outs[1] / "d/week01.json").unlink()
    with pytest.raises(CourseError, match=r"did not finish \(1 of 2 reports missing, e.g. d/week01\)"):  # fmt: skip
        merge(outs, tmp_path / "class")


def test_merge_refuses_shards_of_different_runs(tmp_path):
    three = _shards(tmp_path / "x", ["a", "b", "c"], 3)
    two = _shards(tmp_path / "y", ["a", "b", "c"], 2)
    with pytest.raises(CourseError, match="are not shards of one run"):
        merge([*three, two[1]], tmp_path / "class")


def test_merge_refuses_a_report_without_digest_and_a_used_destination(tmp_path):
    outs = _shards(tmp_path, ["a", "b"], 2, digest="")
    with pytest.raises(CourseError, match="does not record which version"):
        merge(outs, tmp_path / "class")
    busy = tmp_path / "busy"
    (busy / "notes").mkdir(parents=True)
    with pytest.raises(CourseError, match="is not an earlier `course merge` output"):
        merge(_shards(tmp_path / "ok", ["a"], 1), busy)
    with pytest.raises(CourseError, match="holds no grade reports"):
        merge([busy], tmp_path / "class")


def test_course_merge_cli(tmp_path, capsys):
    outs = _shards(tmp_path, ["a", "b", "c"], 3)
    assert main(["merge", *map(str, outs), "--out", str(tmp_path / "class")]) == 0
    assert "3 students" in capsys.readouterr().out
    assert main(["merge", str(outs[0]), "--out", str(tmp_path / "other")]) == 2
    assert "Shard 1/3 is missing" in capsys.readouterr().err


def test_reports_record_the_digest_of_the_instructors_material():
    from autograder.sources import find_source, material_digest, material_files

    source = find_source(REPO)
    files = {p.as_posix() for p in material_files(source, WEEKS[1])}
    assert "week01/lab.ipynb" in files and "week01/tests/hidden/test_train_hidden.py" in files
    assert "mlpipe/train.py" in files and not any(f.startswith("week02/") for f in files)
    assert material_digest(source, WEEKS[1]) != material_digest(source, WEEKS[2])
    assert Report.from_dict(_report("a", 1, "x").to_dict()).source_digest == "x"


# --- Gradescope -------------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["after_published", "hidden"])
def test_gradescope_results_follow_the_schema(visibility):
    report = _report("a", 2.0)
    report.reasons = ["A reason for the whole submission."]
    results = gradescope_results(report, [HIDDEN_SOURCE], visibility)
    jsonschema.validate(results, SCHEMA)
    assert results["score"] == 2.0 and "leaderboard" not in results
    assert results["stdout_visibility"] == "hidden"
    by_name = {t["name"]: t for t in results["tests"]}
    assert by_name["hidden/test_h.py::test_h"]["visibility"] == visibility
    assert by_name["test_train.py::test_split"]["visibility"] == "visible"
    assert "secret_helper" not in json.dumps(results)
    with pytest.raises(ValueError):
        gradescope_results(report, [], "visible")


def test_the_schema_rejects_what_gradescope_would_not_take():
    for bad in ({"tests": [{"name": "x"}]}, {"score": 1, "tests": [{"score": 1, "status": "ok"}]}, {"score": 1, "visibility": "public"}, {"score": 1, "typo": 1}):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def test_gradescope_package_holds_the_week_and_nothing_else(tmp_path):
    first = package(1, tmp_path / "a", hidden_visibility="hidden")
    again = package(1, tmp_path / "b", hidden_visibility="hidden")
    assert first.name == "week01-autograder.zip"
    assert first.read_bytes() == again.read_bytes()  # offline, from the files: reproducible
    with zipfile.ZipFile(first) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        run = archive.read("run_autograder").decode()
    names = set(infos)
    for name in ("setup.sh", "run_autograder", "requirements/lock.txt", "pyproject.toml", "autograder/grade.py", "solutions/week01/lab.ipynb", "solutions/week01/tests/hidden/test_train_hidden.py", "solutions/mlpipe/train.py", "labs/mlpipe/train.py"):  # fmt: skip
        assert name in names, name
    assert not [n for n in names if n.startswith(("solutions/week02", "autograder/reference", ".git"))]  # fmt: skip
    assert not [n for n in names if "__pycache__" in n]
    for script in ("setup.sh", "run_autograder"):
        assert stat.S_IMODE(infos[script].external_attr >> 16) == 0o755
    assert "--week 1 " in run and "--hidden-visibility hidden" in run and "{{" not in run


def test_gradescope_package_refusals(tmp_path, capsys):
    assert main(["gradescope-package", "--week", "9", "--out", str(tmp_path)]) == 2
    assert "There is no lab for week '9'" in capsys.readouterr().err
    with pytest.raises(CourseError, match="is not one of"):
        package(1, tmp_path, hidden_visibility="visible")
    assert not list(tmp_path.iterdir())


def test_collect_writes_a_zero_with_the_reason_when_nothing_was_graded(tmp_path):
    stderr = tmp_path / "stderr"
    stderr.write_text("course: 'x' is not a submission: it has no labs/ folder.\n")
    data = collect(tmp_path / "grades", tmp_path / "results/results.json", 1, 2, stderr)
    jsonschema.validate(data, SCHEMA)
    assert data["score"] == 0 and "it has no labs/ folder" in data["output"]
    assert json.loads((tmp_path / "results/results.json").read_text()) == data


# --- the Kubernetes Job (strict validation: tests/e2e/test_shard_class.py) --------------------


def test_grade_job_is_an_indexed_job_without_network_within_the_limits():
    docs = {d["kind"]: d for d in yaml.safe_load_all(JOB.read_text())}
    job, policy = docs["Job"], docs["NetworkPolicy"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    count = spec["completions"]
    assert spec["parallelism"] == count
    [container] = spec["template"]["spec"]["containers"]
    command = " ".join(container["args"])
    assert f"--shard $(JOB_COMPLETION_INDEX)/{count}" in command
    assert "--out /class/grades/shard-$(JOB_COMPLETION_INDEX)" in command
    jobs = int(re.search(r"--jobs (\d+)", command).group(1))
    limits = Limits()
    assert f"--memory-mb {limits.memory_mb}" in command
    assert f"--cell-timeout {limits.cell_timeout} --test-timeout {limits.test_timeout}" in command
    res = container["resources"]["limits"]
    assert int(res["cpu"]) == jobs
    assert int(res["memory"].removesuffix("Gi")) * 1024 >= jobs * limits.memory_mb
    labels = spec["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "egress" not in policy["spec"] and "ingress" not in policy["spec"]  # deny all
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/class/submissions"]["readOnly"] is True
    assert spec["template"]["spec"]["automountServiceAccountToken"] is False
