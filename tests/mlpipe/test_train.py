"""Code, data and model tests of the reference ``mlpipe.train`` and its CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import SOLUTIONS, run_module

import mlpipe
from mlpipe import train
from mlpipe.config import ParamsError, TrainParams, load_train_params


def test_reference_package_is_under_test():
    assert Path(mlpipe.__file__).resolve().parent == SOLUTIONS / "mlpipe"


# --- data ---------------------------------------------------------------------------


def test_iris_data_is_clean():
    df = train.load_data()
    assert df[train.FEATURES].notna().all().all()
    assert (df[train.FEATURES] > 0).all().all()
    assert df[train.TARGET].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }


def test_fingerprint_is_a_known_value():
    # The fingerprint of the shipped Iris data; it changes only if the data does.
    assert train.fingerprint(train.load_data()) == (
        "sha256:9cc1c345c71bcc9b486b74cbf6063fa66f4bb5e0f603a4b3c3471ec2e5e8e355"
    )


# --- model --------------------------------------------------------------------------


def test_same_params_give_identical_model_and_metrics(tmp_path):
    a = train.train(TrainParams(), tmp_path / "a")
    b = train.train(TrainParams(), tmp_path / "b")
    assert a.metrics == b.metrics
    assert a.metadata["model_fingerprint"] == b.metadata["model_fingerprint"]
    assert (tmp_path / "a" / "model.joblib").read_bytes() == (
        tmp_path / "b" / "model.joblib"
    ).read_bytes()


def test_another_seed_gives_another_model(tmp_path):
    a = train.train(TrainParams(seed=42), tmp_path / "a")
    c = train.train(TrainParams(seed=7), tmp_path / "c")
    assert a.metadata["model_fingerprint"] != c.metadata["model_fingerprint"]


def test_model_quality_and_roundtrip(tmp_path):
    result = train.train(TrainParams(), tmp_path)
    assert result.metrics["accuracy"] >= 0.9
    model, meta = train.load_model(tmp_path)
    X = train.load_data()[train.FEATURES].head(5)
    assert list(model.predict(X)) == ["setosa"] * 5
    assert meta == json.loads(json.dumps(result.metadata))


# --- params ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  max_iters: 10\n", "Unknown key 'train.max_iters' (did you mean 'max_iter'?)."),
        ("train:\n  C: strong\n", "train.C must be float, got str 'strong'."),
        ("train:\n  seed: 1.5\n", "train.seed must be int, got float 1.5."),
        ("train:\n  seed: true\n", "train.seed must be int, got bool True."),
        ("train:\n  test_size: 2\n", "train.test_size must be between 0 and 1, got 2.0."),
        ("train: [1, 2]\n", "Section 'train' must be a mapping of key: value pairs."),
        ("train:\n  seed: [\n", "is not valid YAML at line"),
        ("- a\n- b\n", "must be a mapping of sections"),
    ],
)
def test_bad_params_are_one_clear_sentence(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as err:
        load_train_params(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_ints_are_accepted_for_floats(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  C: 2\n")
    assert load_train_params(path).C == 2.0


# --- command line ---------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m mlpipe ARGS`` in a fresh process (what a student types)."""
    return run_module("mlpipe", *args, cwd=cwd, pythonpath=SOLUTIONS)


@pytest.fixture
def cli_here(tmp_path, monkeypatch, capsys):
    """``python -m mlpipe``'s ``main`` called in this process, in ``tmp_path``.

    The refusals below exit before training: a fresh process per case would only
    pay scikit-learn's import again. The tests marked "a real process" run the same
    paths through ``python -m mlpipe``.
    """
    from mlpipe.__main__ import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["mlpipe", *args], code, out.out, out.err)

    return run


def test_cli_trains_with_the_params_file(tmp_path):
    proc = _cli("train", "--params", str(SOLUTIONS / "params.yaml"), "--out", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["params"] == TrainParams().__dict__


@pytest.mark.parametrize(
    ("text", "needle"),
    [("train:\n  max_iters: 10\n", "max_iters"), ("train:\n  C: strong\n", "train.C")],
)
def test_cli_rejects_bad_params_without_traceback(tmp_path, cli_here, text, needle):
    (tmp_path / "params.yaml").write_text(text)
    proc = cli_here("train", "--params", "params.yaml", "--out", "m")
    assert proc.returncode == 2
    assert needle in proc.stderr and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists(), "nothing is written for a rejected run"


def test_cli_missing_params_file(tmp_path):
    """A real process: the params refusals above end the same way outside pytest."""
    proc = _cli("train", "--params", "nope.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# --- command line on bad data (week 2's --data) -----------------------------------------


def _processed(tmp_path: Path, row5: str | None = None, rows: int | None = None) -> Path:
    """The processed Iris CSV, with data row 5 replaced by ``row5`` and only ``rows`` rows."""
    lines = (
        train.load_data().to_csv(index=False, lineterminator="\n").splitlines()
    )  # header + 150 data rows
    if row5 is not None:
        lines[5] = row5
    if rows is not None:
        lines = lines[: rows + 1]
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("row5", "rows", "message"),
    [
        (None, 0, "Data file 'iris.csv' has a header line but no data rows."),
        (
            "5.1,3.5,1.4,0.2,iris-unknown",
            None,
            "Data file 'iris.csv' has the unknown label 'iris-unknown' in column species, "
            "data row 5; known: setosa, versicolor, virginica.",
        ),
        ("5.1,3.5,,0.2,setosa", None, "has no value in column petal_length, data row 5."),
        ("5.1,3.5,1.4,0.2,", None, "has no value in column species, data row 5."),
        (
            "5.1,wide,1.4,0.2,setosa",
            None,
            "has 'wide', not a number, in column sepal_width, data row 5.",
        ),
        (
            "5.1,3.5,1e308,0.2,setosa",
            None,
            "has 1e+308 in column petal_length, data row 5, outside the valid range [0.0, 10.0]",
        ),
        (
            "5.1,3.5,1e309,0.2,setosa",
            None,
            "has inf in column petal_length, data row 5, outside the valid range [0.0, 10.0]",
        ),
        ("-0.1,3.5,1.4,0.2,setosa", None, "has -0.1 in column sepal_length, data row 5, outside"),
        (None, 51, "has only 1 row of the label 'versicolor' in column species (data row 51)"),
        (None, 5, "has only 5 data rows: with train.test_size 0.2, 1 test row(s) and 4 "),
    ],
    ids=[
        "header-only",
        "unseen-label",
        "nan",
        "empty-label",
        "text",
        "1e308",
        "1e309",
        "negative",
        "single-row-label",
        "too-few-rows",
    ],
)
def test_cli_refuses_data_training_cannot_use_in_one_sentence(
    tmp_path, cli_here, row5, rows, message
):
    _processed(tmp_path, row5, rows)
    if rows == 5:  # 3 setosa, 2 versicolor: one test row cannot hold both labels
        lines = (tmp_path / "iris.csv").read_text().splitlines()
        lines[4:6] = [line.replace("setosa", "versicolor") for line in lines[4:6]]
        (tmp_path / "iris.csv").write_text("\n".join(lines) + "\n")
    proc = cli_here("train", "--data", "iris.csv", "--out", "m")
    _assert_refused(tmp_path, proc, message)


def test_cli_refuses_bad_data_in_a_real_process(tmp_path):
    _processed(tmp_path, "5.1,3.5,,0.2,setosa")
    proc = _cli("train", "--data", "iris.csv", "--out", "m", cwd=tmp_path)
    _assert_refused(tmp_path, proc, "has no value in column petal_length, data row 5.")


def _assert_refused(tmp_path: Path, proc: subprocess.CompletedProcess, message: str) -> None:
    __tracebackhide__ = True
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists(), "nothing is written for refused data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris.csv"]


def test_cli_trains_on_clean_processed_data(tmp_path):
    _processed(tmp_path)
    proc = _cli("train", "--data", "iris.csv", "--out", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m" / train.MODEL_FILE).is_file()
