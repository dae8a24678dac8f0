"""The student handout that `course export-student` writes: its own README and Makefile.

The fast part checks the exported text (no instructor paths, every `make X` exists,
every path exists, every command is one the slow part runs), the rubrics and the
instructor README's student-facing lines, and runs the quick commands. The slow part
runs every command the student README names in the handout, and `make install` for
real. The handout reuses the instructor's `.venv` through a symlink (its stamp is newer
than the copied lock file, so `make install` has nothing to do), with the handout first on
PYTHONPATH so that `autograder` is the handout's, as its own install makes it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO

from autograder.config import LABS, WEEKS
from autograder.export import STUDENT_MAKEFILE, export_student, student_readme

VENV = REPO / ".venv"
#: Top-level folders of the instructor's repository that a handout does not have.
INSTRUCTOR_ONLY = re.compile(r"(?<![\w/.-])(solutions|tests|scripts|capstone)/")
#: Paths the student README names (first token of each), checked to exist in the handout.
PATH = re.compile(
    r"(?<![\w/.-])((?:weeks|labs|autograder|requirements|jupyter-config|\.github)/[\w./-]*)"
)
#: A command with a placeholder (`WEEK=N`, `STAGE`) is an example, not one to run.
PLACEHOLDER = re.compile(r"(=|\s)(N|NN|STAGE)\b")
CHECK_1 = ("visible score: 0 / 21", "labs")
#: Every command the student README names: (exit code, text its output must contain).
#: Run by test_every_readme_command_works_in_the_handout in a handout with the untouched labs.
COMMANDS: dict[str, tuple[int, tuple[str, ...]]] = {
    "make help": (0, ("make check", "make demo", "make test")),
    "make install": (0, ("Installed.",)),
    ". .venv/bin/activate": (0, ("/.venv/bin/course",)),
    "make demo": (0, ("demo stopped at week 1 (train): mlpipe.train.",)),
    "make check": (2, CHECK_1),  # WEEK defaults to 1
    "make check WEEK=1": (2, CHECK_1),
    ".venv/bin/course check 1": (1, CHECK_1),
    ".venv/bin/course check 1 --task 3": (1, ("Week 1, task 3", "visible score: 0 / 7")),
    "make test": (2, ("still failing in week(s): " + " ".join(map(str, WEEKS)),)),
    ".venv/bin/course grade . --week 1 --out grades": (0, ("hidden tests were not available",)),
    "make lab": (0, ()),  # started, answers on its port, stopped: see _run_lab
    # course checklist: nothing graded yet in the untouched handout, never an error
    ".venv/bin/course checklist": (
        0,
        ("no evidence yet: run `course check 1`", "hands-on skills proven"),
    ),
}
#: The commands of COMMANDS that take seconds: the fast part runs them, the slow part the rest.
QUICK = (
    "make help",
    "make install",
    ". .venv/bin/activate",
    "make demo",
    ".venv/bin/course checklist",
)


def _export(dest: Path) -> Path:
    handout = export_student(dest)
    if not (VENV / ".installed").is_file():
        pytest.skip("the instructor's .venv is not installed (run make install)")
    (handout / ".venv").symlink_to(VENV)
    return handout


@pytest.fixture(scope="module")
def handout(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("handout") / "alice")


def _readme_commands(readme: str) -> set[str]:
    """The commands a README names: fenced bash lines and backticked make/.venv commands."""
    commands = set()
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            command = line.split("#")[0].strip()
            if command:
                commands.add(command)
    for code in re.findall(r"`([^`\n]+)`", readme):
        if re.match(r"(make |\.venv/bin/|\. \.venv/bin/activate)", code) and code[-1] != "/":
            commands.add(code.strip())
    return {" ".join(c.split()) for c in commands if not PLACEHOLDER.search(c)}


def _run(command: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    if (cwd / ".venv").is_symlink():
        # The instructor's editable install maps `autograder` to the instructor's tree, whose
        # solutions/ the grader would find; the handout's own install maps it to the handout's.
        env["PYTHONPATH"] = str(cwd)
    if command == ". .venv/bin/activate":
        command += " && command -v course"
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _make_targets(makefile: Path) -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", makefile.read_text(), re.M))


# --- fast: the exported text -----------------------------------------------------------------


def test_handout_readme_and_makefile_are_the_students(handout):
    readme = (handout / "README.md").read_text()
    assert readme == student_readme() != (REPO / "README.md").read_text()
    assert (handout / "Makefile").read_text() == (REPO / STUDENT_MAKEFILE).read_text()
    texts = {
        name: (handout / name).read_text()
        for name in ("README.md", "Makefile", "autograder/templates/student-demo.sh")
    }
    for name, text in texts.items():
        assert not INSTRUCTOR_ONLY.findall(text), (name, INSTRUCTOR_ONLY.findall(text))
    # Every `make X` the README names is a target that `make help` lists.
    targets = _make_targets(handout / "Makefile")
    listed = set(re.findall(r"make (\S+)", _run("make -s help", handout).stdout))
    assert listed == targets
    assert {"help", "install", "lab", "check", "test", "demo"} <= targets
    for target in re.findall(r"`make ([a-z-]+)", readme):
        assert target in targets, target
    # Every path the README names exists in the handout.
    for link in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (handout / link).exists(), link
    for path in PATH.findall(readme):
        path = path.rstrip(".,")
        if "NN" not in path:
            assert (handout / path).exists(), path
    # The devcontainer's commands are the handout's targets too.
    devcontainer = json.loads((handout / ".devcontainer/devcontainer.json").read_text())
    for key in ("postCreateCommand", "postAttachCommand"):
        assert devcontainer[key].split()[1] in targets
    # Activation is explained, and no command needs it.
    assert ". .venv/bin/activate" in readme
    assert not re.search(
        r"(?<![\w/])course (check|grade)\b", re.sub(r"\.venv/bin/course", "", readme)
    )


def test_handout_week_table_comes_from_the_week_registry(handout):
    readme = (handout / "README.md").read_text()
    assert "{{weeks}}" not in readme
    for week in WEEKS.values():
        row = next(line for line in readme.splitlines() if line.startswith(f"| {week.number} |"))
        assert week.title in row
        for path in (f"weeks/{week.slug}/README.md", f"{LABS}/{week.lab}/lab.ipynb",
                     f"weeks/{week.slug}/RUBRIC.md", *(f"{LABS}/{f}" for f in week.files)):  # fmt: skip
            assert path in row and (handout / path).exists(), path


def test_every_readme_command_is_run_by_the_slow_test(handout):
    named = _readme_commands((handout / "README.md").read_text())
    assert named - set(COMMANDS) == set(), "a README command that no test runs"
    assert set(COMMANDS) - named == set(), "a tested command the README no longer names"


@pytest.mark.parametrize("command", QUICK)
def test_quick_readme_commands_work_in_the_handout(handout, command):
    code, texts = COMMANDS[command]
    proc = _run(command, handout, timeout=120)
    assert proc.returncode == code, proc.stdout + proc.stderr
    for text in texts:
        assert text in proc.stdout, proc.stdout + proc.stderr


def test_demo_fails_loudly_on_a_bug_in_a_built_stage(tmp_path):
    handout = _export(tmp_path / "bob")
    train = handout / "labs/mlpipe/train.py"
    train.write_text(train.read_text() + "\nraise RuntimeError('a bug in my train module')\n")
    proc = _run("make demo", handout, timeout=120)
    assert proc.returncode != 0
    assert "demo failed at week 1 (train)" in proc.stdout
    assert "a bug in my train module" in proc.stdout


# --- fast: the instructor README's student lines, the rubrics --------------------------------


def test_instructor_readme_student_commands_work_without_activation():
    readme = (REPO / "README.md").read_text()
    assert ". .venv/bin/activate" in readme
    student = readme.split("## For students")[1].split("## For instructors")[0]
    quick = readme.split("## Quick start")[1].split("## The eight weeks")[0]
    for section in (student, quick):
        bare = re.sub(r"\.venv/bin/course", "", section)
        assert not re.search(r"`course (check|grade)\b|^course (check|grade)\b", bare, re.M)
    assert "RUBRIC.md" in student


def _written_answers() -> list:
    """(week, question, points) of each lab's written answer in solutions/."""
    answers = []
    for week in WEEKS.values():
        cells = json.loads((REPO / "solutions" / week.lab / "lab.ipynb").read_text())["cells"]
        for before, cell in zip(cells, cells[1:], strict=False):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell["cell_type"] == "markdown" and meta.get("solution") and meta.get("grade"):
                question = "".join(before["source"]).split("\n", 1)[1]
                answers.append(pytest.param(week.number, question, meta["points"], id=week.lab))
    return answers


def _words(text: str) -> str:
    return " ".join(re.sub(r"^> ?", "", text, flags=re.M).split())


@pytest.mark.parametrize(
    "number, question, points",
    _written_answers(),
    ids=lambda v: f"week{v}" if type(v) is int else "",
)
def test_each_written_answer_has_a_rubric_the_student_can_see(number, question, points):
    week = WEEKS[number]
    rubric = (REPO / "weeks" / week.slug / "RUBRIC.md").read_text()
    assert _words(question) in _words(rubric), "the rubric quotes its question"
    rows = re.findall(r"^\| (\d+(?:\.\d+)?) \|", rubric, re.M)
    assert sum(map(float, rows)) == points and len(rows) >= 2
    assert f"labs/{week.lab}/lab.ipynb" in rubric
    # The week's README links it, and its feedback command needs no activated venv.
    lesson = (REPO / "weeks" / week.slug / "README.md").read_text()
    assert "](RUBRIC.md)" in lesson
    assert not re.search(r"^course check", lesson, re.M) and f"make check WEEK={number}" in lesson


# --- slow: every command, and a real install -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_path(group: int) -> str:
    """PATH of the JupyterLab server in process group ``group``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
            if b"jupyter" in (stat.parent / "cmdline").read_bytes():
                env = dict(v.decode().split("=", 1) for v in environ if b"=" in v)
                return env.get("PATH", "")
        except (OSError, ValueError, IndexError):
            continue
    raise AssertionError("no JupyterLab server process found")


def _run_lab(handout: Path) -> None:
    port = _free_port()
    log_path = handout.parent / f"lab-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["make", "lab", f"LAB_PORT={port}", "LAB_ARGS=--no-browser"],
            cwd=handout, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    url = f"http://127.0.0.1:{port}/api"
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        assert "version" in json.loads(answer.read())
                    break
                except OSError:
                    assert time.monotonic() < deadline, "make lab did not answer in 120 s"
                    time.sleep(1)
            # Its terminals inherit the server's PATH: `course check N` (the notebooks say so).
            assert _server_path(proc.pid).startswith(f"{handout}/.venv/bin:")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in QUICK])
def test_every_readme_command_works_in_the_handout(handout, command):
    if command == "make lab":
        _run_lab(handout)
        return
    code, texts = COMMANDS[command]
    proc = _run(command, handout, timeout=1800 if command == "make test" else 900)
    assert proc.returncode == code, proc.stdout + proc.stderr
    for text in texts:
        assert text in proc.stdout, proc.stdout + proc.stderr
    if command.startswith((".venv/bin/course check", "make check")):
        assert str(handout / "labs") in proc.stdout  # the handout's labs, not the instructor's


@pytest.mark.slow
def test_demo_goes_as_far_as_the_students_weeks(tmp_path):
    """Week 1 done (the reference train.py): the demo trains, then stops at week 2's stub."""
    handout = _export(tmp_path / "carol")
    shutil.copyfile(REPO / "solutions/mlpipe/train.py", handout / "labs/mlpipe/train.py")
    proc = _run("make demo", handout, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model saved to" in proc.stdout
    assert "demo stopped at week 2 (dvc repro): mlpipe.data." in proc.stdout
    assert (handout / "build/demo/week1-model/metadata.json").is_file()


@pytest.mark.slow
def test_handout_make_install_for_real(tmp_path):
    """`make install` in a fresh handout: `course` and `import mlpipe` are the handout's."""
    handout = export_student(tmp_path / "dave")
    proc = _run("make install", handout, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = _run(
        ".venv/bin/python -c 'import mlpipe, autograder; print(mlpipe.__file__, autograder.__file__)'",
        handout,
    )
    assert where.stdout.split() == [
        str(handout / "labs/mlpipe/__init__.py"),
        str(handout / "autograder/__init__.py"),
    ], where.stdout + where.stderr
    assert _run("make -q .venv/.installed", handout).returncode == 0  # nothing left to do
