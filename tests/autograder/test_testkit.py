"""``autograder.testkit``: the course test kit every week's component tests load."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO

from autograder import testkit
from autograder.config import TESTKIT

#: A command that fails the way a crashing ``python -m mlpipe`` does: a long traceback.
CRASH = (
    "import sys\n"
    "print('training...')\n"
    "print('Traceback (most recent call last):', file=sys.stderr)\n"
    "for i in range(30):\n"
    "    print(f'  File \"frame{i}.py\", line {i}, in step{i}', file=sys.stderr)\n"
    "print('ValueError: C must be positive, got -1.0', file=sys.stderr)\n"
    "sys.exit(3)\n"
)


def test_a_failed_command_shows_itself_its_exit_code_and_its_last_lines(tmp_path):
    (tmp_path / "crash.py").write_text(CRASH)
    proc = testkit.run(sys.executable, tmp_path / "crash.py", "--out", tmp_path / "m", cwd=tmp_path)
    with pytest.raises(AssertionError) as failure:
        testkit.assert_ran(proc, cwd=tmp_path)
    message = str(failure.value)
    first, *rest = message.splitlines()
    assert first.startswith("`python crash.py --out m` exited")
    assert first.endswith("exited with 3, expected 0: ValueError: C must be positive, got -1.0")
    assert "frame29.py" in message and "training..." in message
    # The end of the traceback, never its top.
    assert "Traceback (most recent call last)" not in message and "frame0.py" not in message
    assert len(rest) <= sum(testkit.TAIL_LINES) + 2 and len(message) < 3500
    assert testkit.assert_ran(proc, 3) is proc


def test_a_command_that_should_fail_but_succeeds_says_so(tmp_path):
    proc = testkit.run(sys.executable, "-c", "print('all good')", cwd=tmp_path)
    with pytest.raises(AssertionError, match="exited with 0, but it should have failed: all good"):
        testkit.assert_failed(proc, hint="validation must stop the pipeline")
    proc = testkit.run(sys.executable, "-c", "raise SystemExit(2)", cwd=tmp_path)
    assert testkit.assert_failed(proc) is proc


def test_a_hanging_or_missing_command_fails_in_one_sentence(tmp_path):
    code = "import sys, time\nprint('loading', flush=True)\ntime.sleep(30)"
    with pytest.raises(AssertionError, match=r"did not finish within 1 s: loading"):
        testkit.run(sys.executable, "-c", code, cwd=tmp_path, timeout=1)
    with pytest.raises(AssertionError, match="could not start"):
        testkit.run(tmp_path / "no-such-tool", cwd=tmp_path)


def test_commands_are_shown_as_a_student_types_them(tmp_path):
    dvc = [sys.executable, "-m", "dvc", "repro"]
    assert testkit.shown(dvc) == "dvc repro"
    args = [sys.executable, "-m", "mlpipe", "train", "--out", str(tmp_path / "model dir")]
    assert testkit.shown(args, tmp_path) == "python -m mlpipe train --out 'model dir'"
    assert testkit.shown(["/usr/bin/git", "status"]) == "git status"
    assert testkit.shown([sys.executable, "-c", "a\nb"]) == "python -c 'a\\nb'"  # one line


def test_run_mlpipe_runs_the_package_under_test_and_teaches_on_failure(tmp_path):
    proc = testkit.run_mlpipe("no-such-stage", cwd=tmp_path)
    with pytest.raises(AssertionError) as failure:
        testkit.assert_ran(proc)
    first = str(failure.value).splitlines()[0]
    assert first.startswith("`python -m mlpipe no-such-stage` exited with 2, expected 0: ")
    assert "invalid choice" in first
    env = testkit.pipeline_env({"PYTHONPATH": "/elsewhere", "MLFLOW_TRACKING_URI": "x"}, A="1")
    assert env["PYTHONPATH"] == os.pathsep.join([str(REPO / "solutions"), "/elsewhere"])
    assert "MLFLOW_TRACKING_URI" not in env and env["A"] == "1"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_hadolint_shows_every_finding_in_full_without_colour(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text('FROM python:3.11\nRUN pip install pandas\nCMD ["python"]\n')
    with pytest.raises(AssertionError) as failure:
        testkit.hadolint(bad)
    message = str(failure.value)
    assert message.startswith(f"hadolint found 2 problems in {bad}")
    assert "\x1b[" not in message
    assert f"{bad}:2 DL3013 warning: Pin versions in pip." in message
    assert "or `pip install --requirement <requirements file>`" in message  # the full hint
    assert "DL3042" in message and testkit.HADOLINT_RULES in message
    testkit.hadolint(REPO / "solutions/docker/train.Dockerfile")


def test_dockerfile_parser_joins_continuations_and_reads_the_exec_form(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text('# comment\nFROM python:3.11\nRUN a \\\n    && b\nCMD ["python", "-m", "x"]\n')
    assert testkit.dockerfile_instructions(path) == [
        ("FROM", "python:3.11"),
        ("RUN", "a && b"),
        ("CMD", '["python", "-m", "x"]'),
    ]
    assert testkit.docker_cmd(path) == ["python", "-m", "x"]
    path.write_text("FROM python:3.11\nCMD python -m x\n")
    with pytest.raises(pytest.fail.Exception, match="exec form"):
        testkit.docker_cmd(path)


def test_a_copied_store_is_a_fresh_store_of_its_new_folder(tmp_path):
    import mlflow

    (tmp_path / "template").mkdir()
    template = testkit.create_store(tmp_path / "template")
    home = tmp_path / "home"
    uri = testkit.copy_store(template, home)
    assert uri == testkit.sqlite_uri(home) and (home / "mlflow.db").is_file()
    with sqlite3.connect(template) as db:
        assert db.execute("SELECT artifact_location FROM experiments").fetchall() == [
            (str(tmp_path / "template" / "mlruns" / "0"),)
        ]
    client = testkit.mlflow_client(home)
    (default,) = client.search_experiments()
    assert default.name == "Default" and default.artifact_location == str(home / "mlruns" / "0")
    client.create_registered_model("m")
    assert mlflow.MlflowClient(tracking_uri=uri).search_registered_models()[0].name == "m"
    assert testkit.aliases(home, "m") == {}


def _run_pytest(folder, *args: str, env=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTEST_ADDOPTS"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers",
         "--basetemp", str(folder / "pytest-tmp"), *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_week_conftest_that_names_the_kit_runs_alone_and_under_the_grader(tmp_path):
    """``pytest labs/weekNN/tests`` (the conftest loads the kit) and the grader's ``-p`` both work."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(f'pytest_plugins = ("{TESTKIT}",)\n')
    (tests / "test_week.py").write_text(
        textwrap.dedent("""
            import os

            import pytest

            from autograder.testkit import assert_ran, run


            @pytest.mark.points(2)
            @pytest.mark.timeout(30)
            def test_marked(params_file):
                assert params_file.name == "params.yaml"
                assert "MLFLOW_TRACKING_URI" not in os.environ
                os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///leaks.db"


            def test_no_leak():
                assert "MLFLOW_TRACKING_URI" not in os.environ


            def test_command(tmp_path):
                assert_ran(run("false", cwd=tmp_path))
        """)
    )
    for extra in ([], ["-p", TESTKIT]):
        proc = _run_pytest(tmp_path, "tests", "-o", f"pythonpath={REPO / 'solutions'}", *extra)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "1 failed, 2 passed" in proc.stdout, proc.stdout
        assert (
            "AssertionError: `false` exited with 1, expected 0: it printed nothing" in proc.stdout
        )


def test_stopping_a_server_started_in_its_own_session_stops_its_workers_too(tmp_path):
    """An mlflow server leaves its job workers behind unless its whole group is stopped."""
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    worker = int(proc.stdout.readline())
    testkit.stop_process(proc, seconds=5)
    proc.stdout.close()
    assert proc.returncode is not None
    for _ in range(50):  # the worker is gone (reaped by init, or a zombie for a moment)
        try:
            with open(f"/proc/{worker}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the server's worker outlived it")


def test_a_stub_is_a_docstring_and_raise_not_implemented_error_only():
    def parsed(body: str):
        return ast.parse(textwrap.dedent(body)).body[0]

    assert testkit.is_stub(parsed('def f():\n    """Doc."""\n    raise NotImplementedError("f")'))
    assert testkit.is_stub(parsed("def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError"))
    assert not testkit.is_stub(parsed("def f():\n    x = 1\n    raise NotImplementedError"))
    assert not testkit.is_stub(parsed("def f():\n    raise ValueError('no')"))
    assert not testkit.is_stub(parsed('def f():\n    """Doc."""'))


def test_a_task_whose_functions_are_all_stubs_fails_at_once_and_says_what_to_write(tmp_path):
    """Before its fixtures run; a task with one function written, or no functions, runs."""
    (tmp_path / "mlpipe").mkdir()
    (tmp_path / "mlpipe" / "__init__.py").write_text("")
    (tmp_path / "mlpipe" / "stage.py").write_text(
        textwrap.dedent('''
            def started():
                return 1


            def left():
                """Not yet."""
                raise NotImplementedError("mlpipe.stage.left")


            def other():
                raise NotImplementedError("mlpipe.stage.other")
        ''')
    )
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(
        textwrap.dedent(f"""
            import pytest

            pytest_plugins = ("{TESTKIT}",)
            TASK_FUNCTIONS = {{1: ("stage.left", "stage.other"), 2: ("stage.left", "stage.started")}}


            @pytest.fixture()
            def costly(tmp_path):
                (tmp_path.parent / "fixture-ran").write_text("")
        """)
    )
    (tests / "test_stage.py").write_text(
        textwrap.dedent("""
            import pytest

            from mlpipe import stage


            @pytest.mark.task(1)
            def test_not_started(costly):
                assert stage.left() == 2


            @pytest.mark.task(2)
            def test_half_done():
                assert stage.started() == 1


            @pytest.mark.task(3)
            def test_a_file_task():
                assert True
        """)
    )
    proc = _run_pytest(tmp_path, "tests", "-o", f"pythonpath={tmp_path}", "-rE")
    out = proc.stdout
    assert "1 error, 2 passed" in out or "2 passed, 1 error" in out, out
    assert (
        "Task 1 is not started yet: mlpipe.stage.left, mlpipe.stage.other still raise "
        "NotImplementedError: write them first (this test was not run)."
    ) in out
    assert not list(tmp_path.rglob("fixture-ran")), "the test's fixtures ran"
    env = {**os.environ, testkit.RUN_STUBS_VAR: "1"}
    proc = _run_pytest(tmp_path, "tests", "-o", f"pythonpath={tmp_path}", env=env)
    assert "1 failed, 2 passed" in proc.stdout and "NotImplementedError" in proc.stdout
