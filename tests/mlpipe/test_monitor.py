"""Code tests of the reference ``mlpipe.monitor`` (week 6) and its command line.

The inference logs are written by week 5's own code (``serve.log_records`` and
``serve.InferenceLog``), in batches of 50 rows as ``/predict/batch`` writes them,
with the labels a model trained on Iris predicts. Evidently takes seconds to
import, so each scenario's run is shared by the module (``runs``), and the bad
inputs go through ``python -m mlpipe monitor``, which refuses them before it
imports Evidently.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SOLUTIONS, run_module
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from mlpipe import data, monitor, serve, train, validate
from mlpipe.__main__ import main
from mlpipe.config import MonitorParams, ParamsError, PrepareParams

FEATURES = train.FEATURES
SIGNATURE = tuple((f, "double") for f in FEATURES)
ROWS = 500


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with week 2's processed data and schema."""
    root = tmp_path_factory.mktemp("monitor-project")
    raw = data.write_raw(root / "data" / "raw" / "iris.csv")
    data.prepare(raw, root / "data" / "processed" / "iris.csv", PrepareParams())
    validate.write_schema(
        data.read_processed(root / "data" / "processed" / "iris.csv"), root / "data" / "schema.json"
    )
    return root


@pytest.fixture(scope="module")
def model():
    df = train.load_data()
    return LogisticRegression(max_iter=500).fit(df[FEATURES].to_numpy(), df["species"])


def traffic(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Requests like the training data: Iris rows with a little measurement noise."""
    rng = np.random.default_rng(seed)
    df = train.load_data()[FEATURES]
    picked = df.iloc[rng.integers(0, len(df), rows)].reset_index(drop=True)
    return (picked + rng.normal(0, 0.03, picked.shape)).clip(0.1).round(3)


def deliveries() -> dict[str, pd.DataFrame]:
    """Normal traffic, and the drifted deliveries week 2 knows."""
    normal = traffic()
    millimetres = normal.assign(petal_length=normal["petal_length"] * 10)  # cm -> mm
    shifted = normal.assign(sepal_width=normal["sepal_width"] + 1.0)
    return {"normal": normal, "mm": millimetres, "shifted": shifted}


def write_log(path: Path, rows: pd.DataFrame, model, version: str = "1") -> list[str]:
    """Append ``rows`` to ``path`` as week 5 logs them; return the request id of each row."""
    ref = serve.ModelRef("iris-classifier", "champion", version, None, "u", "u", SIGNATURE)
    log = serve.InferenceLog(path)
    ids = []
    try:
        for start in range(0, len(rows), 50):
            batch = rows.iloc[start : start + 50]
            labels = [str(label) for label in model.predict(batch.to_numpy())]
            request_id = uuid.uuid4().hex
            log.write(serve.log_records(ref, request_id, batch.to_dict("records"), labels, 1.0))
            ids += [request_id] * len(batch)
    finally:
        log.close()
    return ids


def params(**overrides) -> MonitorParams:
    return MonitorParams(**overrides)


def run(project: Path, name: str, log: Path, **kwargs) -> monitor.MonitorResult:
    return monitor.monitor(
        log=log,
        reference=project / "data" / "processed" / "iris.csv",
        schema=project / "data" / "schema.json",
        out=project / "reports" / name,
        params=kwargs.pop("params", MonitorParams()),
        **kwargs,
    )


@pytest.fixture(scope="module")
def logs(project, model) -> dict[str, Path]:
    found = {}
    for name, rows in deliveries().items():
        found[name] = project / "logs" / f"{name}.jsonl"
        write_log(found[name], rows, model)
    return found


@pytest.fixture(scope="module")
def runs(project, logs) -> dict[str, monitor.MonitorResult]:
    """One monitoring run per delivery (the Evidently reports are shared)."""
    return {name: run(project, name, log) for name, log in logs.items()}


# --- drift ----------------------------------------------------------------------------------------


def test_normal_traffic_shows_no_drift(runs):
    summary = runs["normal"].summary
    assert summary.rows == ROWS and summary.torn_lines == 0
    assert not any(test.drifted for test in summary.features.values()), summary.features
    assert not summary.prediction.drifted
    assert summary.drift_share == 0.0 and not summary.drift_detected
    assert not monitor.policy_breached(summary)
    assert set(summary.prediction_share) == {"setosa", "versicolor", "virginica"}
    assert sum(summary.prediction_share.values()) == pytest.approx(1.0)
    assert summary.model_versions == ["1"]
    assert {t.test for t in summary.features.values()} == {"ks"}
    assert summary.prediction.test == "chisquare"


@pytest.mark.parametrize(
    "delivery, feature, prediction_drifts",
    [("mm", "petal_length", True), ("shifted", "sepal_width", False)],
)
def test_the_drifted_deliveries_week_2_knows_are_found(runs, delivery, feature, prediction_drifts):
    summary = runs[delivery].summary
    drifted = [name for name, test in summary.features.items() if test.drifted]
    assert drifted == [feature]
    assert summary.features[feature].score < 1e-6
    assert summary.prediction.drifted is prediction_drifts
    assert summary.drift_share == 0.25
    # one feature of four: under the default policy (0.5) not dataset drift, at 0.25 it is
    assert not summary.drift_detected
    result = runs[delivery]
    strict = monitor.summarise(result.report, result.window, FEATURES, params(max_drift_share=0.25))
    assert strict.drift_detected and monitor.policy_breached(strict)


def test_the_summary_agrees_with_evidentlys_own_count(runs):
    report = json.loads((runs["mm"].files[0].parent / monitor.JSON_FILE).read_text())
    counts = [m for m in report["metrics"] if m["config"]["type"].endswith("DriftedColumnsCount")]
    assert counts[0]["value"] == {"count": 1.0, "share": 0.25}
    values = {
        m["config"]["column"]: m["value"]
        for m in report["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    summary = json.loads((runs["mm"].files[0].parent / monitor.SUMMARY_FILE).read_text())
    assert {f: t["score"] for f, t in summary["features"].items()} == {
        f: values[f] for f in FEATURES
    }
    assert summary["prediction"]["score"] == values["prediction"]


# --- outputs ----------------------------------------------------------------------------------------


def test_every_output_is_written_and_the_textfile_parses(runs):
    result = runs["mm"]
    out = result.files[0].parent
    names = {monitor.HTML_FILE, monitor.JSON_FILE, monitor.SUMMARY_FILE, monitor.PROM_FILE}
    assert {p.name for p in out.iterdir()} == names  # no temporary file left behind
    assert "<html" in (out / monitor.HTML_FILE).read_text()[:2000].lower()
    summary = json.loads((out / monitor.SUMMARY_FILE).read_text())
    assert summary == json.loads(json.dumps(result.summary.to_dict()))
    families = {
        f.name: f for f in text_string_to_metric_families((out / monitor.PROM_FILE).read_text())
    }
    assert set(families) == set(monitor.GAUGES)
    assert {f.type for f in families.values()} == {"gauge"}

    def value(name: str, **labels: str) -> float:
        (sample,) = [s for s in families[name].samples if s.labels == labels]
        return sample.value

    assert value("mlpipe_drift_share") == 0.25
    assert value("mlpipe_drift_detected") == 0.0
    assert value("mlpipe_monitor_rows") == ROWS
    assert value("mlpipe_feature_drifted", feature="petal_length") == 1.0
    assert value("mlpipe_feature_drifted", feature="sepal_length") == 0.0
    score = summary["features"]["sepal_width"]["score"]
    assert value("mlpipe_feature_drift_score", feature="sepal_width") == pytest.approx(score)
    assert value("mlpipe_prediction_share", label="virginica") == pytest.approx(
        summary["prediction_share"]["virginica"]
    )
    assert value("mlpipe_monitor_last_run_timestamp_seconds") == summary["timestamp"]


def test_ground_truth_adds_the_classification_quality(project, logs, model, tmp_path):
    rows = traffic(120, seed=3)
    log = tmp_path / "labelled.jsonl"
    ids = write_log(log, rows, model)
    truth = train.load_data().iloc[: len(rows)]["species"].tolist()  # wrong for many rows
    truth[:60] = [str(label) for label in model.predict(rows.iloc[:60].to_numpy())]
    pd.DataFrame({"request_id": ids[:90], "species": truth[:90]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    result = run(project, "labelled", log, labels=tmp_path / "labels.csv", last=120)
    summary = result.summary
    predicted = [str(label) for label in model.predict(rows.iloc[:90].to_numpy())]
    expected = np.mean(np.array(predicted) == np.array(truth[:90]))
    assert summary.labelled_rows == 90
    assert summary.accuracy == pytest.approx(expected) and summary.accuracy < 1.0
    assert summary.f1_macro is not None
    out = result.files[0].parent
    assert (out / monitor.QUALITY_HTML_FILE).is_file() and (
        out / monitor.QUALITY_JSON_FILE
    ).is_file()


# --- reading the log, the window ---------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_and_counted(logs, tmp_path, monkeypatch):
    log = tmp_path / "torn.jsonl"
    text = logs["normal"].read_text()
    log.write_text(text + text.splitlines()[0][:37])
    found = monitor.read_log(log, FEATURES)
    assert found.torn_lines == 1 and found.lines == ROWS == len(found.frame)
    assert list(found.frame.columns) == [
        *FEATURES,
        "prediction",
        "time",
        "request_id",
        "model_version",
    ]
    with monkeypatch.context() as patch:

        def denied(self):
            raise PermissionError(13, "Permission denied")

        patch.setattr(Path, "read_bytes", denied)
        with pytest.raises(monitor.MonitorError, match="cannot be read .Permission denied.\\.$"):
            monitor.read_log(log, FEATURES)
    complete = tmp_path / "complete.jsonl"
    complete.write_text(text + text.splitlines()[0])  # no newline, but a whole record
    assert monitor.read_log(complete, FEATURES).lines == ROWS + 1


def test_the_fast_reader_gives_the_frame_of_the_line_by_line_one(logs, tmp_path):
    raw = logs["normal"].read_bytes()
    fast = monitor.fast_frame(raw, ROWS, FEATURES)
    assert fast is not None
    slow = monitor.records_frame(logs["normal"], raw, FEATURES, "schema")
    pd.testing.assert_frame_equal(fast, slow)
    # a key week 5 does not write: the fast reader declines, the line-by-line one reads it
    extra = raw.replace(b'{"request_id"', b'{"client":"x","request_id"')
    assert monitor.fast_frame(extra, ROWS, FEATURES) is None
    log = tmp_path / "extra.jsonl"
    log.write_bytes(extra)
    pd.testing.assert_frame_equal(monitor.read_log(log, FEATURES).frame, slow)
    record = json.loads(raw.split(b"\n", 1)[0])
    missing = {
        **record,
        "inputs": {k: v for k, v in record["inputs"].items() if k != "petal_width"},
    }
    text = {**record, "inputs": {**record["inputs"], "sepal_length": "5.1"}}
    nan = {**record, "inputs": {**record["inputs"], "sepal_width": float("nan")}}
    for bad, problem in [
        (missing, "has the inputs sepal_length, sepal_width, petal_length, not"),
        (text, "has a value that is not a number in sepal_length"),
        (nan, "has a value that is not finite in sepal_width"),
        (None, "is not a JSON object"),
    ]:
        data = raw + json.dumps(bad).encode() + b"\n"
        assert monitor.fast_frame(data, ROWS + 1, FEATURES) is None, problem
        log.write_bytes(data)
        with pytest.raises(monitor.MonitorError) as caught:
            monitor.read_log(log, FEATURES)
        assert str(caught.value).startswith(f"Line {ROWS + 1} of the inference log {log} {problem}")


def test_the_window_is_the_latest_rows_since_a_time():
    frame = pd.DataFrame(
        {
            "time": [f"2026-01-01T00:00:{s:02d}.000+00:00" for s in range(10)],
            "prediction": ["setosa"] * 10,
        }
    )
    assert monitor.select_window(frame, None, 4, 1)["time"].str[17:19].tolist() == [
        "06",
        "07",
        "08",
        "09",
    ]
    since = monitor.parse_since("2026-01-01T00:00:03")  # no zone: UTC
    assert len(monitor.select_window(frame, since, None, 1)) == 7
    assert len(monitor.select_window(frame, since, 5, 1)) == 5
    with pytest.raises(monitor.MonitorError, match="^Not enough data to judge drift: the window"):
        monitor.select_window(frame, since, None, 8)


def test_the_monitor_section_is_checked_like_the_others():
    with pytest.raises(ParamsError, match="did you mean 'max_drift_share'"):
        from mlpipe.config import parse_section

        parse_section("monitor", {"max_drift_shar": 0.3}, MonitorParams)
    with pytest.raises(ParamsError, match="monitor.last .* at least monitor.min_rows"):
        MonitorParams(min_rows=100, last=50)
    with pytest.raises(ParamsError, match="monitor.drift_threshold"):
        MonitorParams(drift_threshold=1.5)


# --- the command line ---------------------------------------------------------------------------------


def cli(project: Path, *args: str):
    return run_module("mlpipe", "monitor", *args, cwd=project, pythonpath=SOLUTIONS)


@pytest.fixture(scope="module")
def cli_project(project, logs, tmp_path_factory) -> Path:
    """A project folder whose files are at the command's default paths."""
    root = tmp_path_factory.mktemp("monitor-cli")
    for rel in ("data/processed/iris.csv", "data/schema.json"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((project / rel).read_bytes())
    (root / "logs").mkdir()
    (root / "logs" / "inference.jsonl").write_bytes(logs["mm"].read_bytes())
    (root / "strict.yaml").write_text("monitor:\n  max_drift_share: 0.25\n")
    return root


def test_check_exits_1_when_the_policy_is_breached_and_0_when_not(
    cli_project, logs, capsys, monkeypatch
):
    proc = cli(cli_project, "--params", "strict.yaml", "--check")
    assert proc.returncode == 1, proc.stderr
    assert "policy breached" in proc.stderr and "Traceback" not in proc.stderr
    assert "DRIFT petal_length" in proc.stdout
    out = cli_project / "reports" / "monitoring"
    assert {p.name for p in out.iterdir()} == {
        monitor.HTML_FILE,
        monitor.JSON_FILE,
        monitor.SUMMARY_FILE,
        monitor.PROM_FILE,
    }
    # the same command in this process (Evidently is loaded): the default policy is met
    monkeypatch.setenv("MLPIPE_HOME", str(cli_project / "elsewhere"))  # no params.yaml there
    args = ["monitor", "--log", str(logs["mm"]), "--check"]
    args += ["--reference", str(cli_project / "data/processed/iris.csv")]
    args += ["--schema", str(cli_project / "data/schema.json")]
    assert main([*args, "--params", str(cli_project / "strict.yaml")]) == 1
    capsys.readouterr()
    assert main(args) == 0
    assert (cli_project / "elsewhere" / "reports" / "monitoring" / monitor.PROM_FILE).is_file()
    assert "no drift" in capsys.readouterr().out


def _bad_logs(tmp: Path, good: str) -> dict[str, tuple[Path, str]]:
    lines = good.splitlines(keepends=True)
    cases = {
        "missing": (tmp / "absent.jsonl", "does not exist"),
        "empty": (tmp / "empty.jsonl", "is empty"),
        "not-json": (tmp / "bad.jsonl", "Line 3 of the inference log"),
        "bad-last-line": (tmp / "badlast.jsonl", f"Line {len(lines) + 1} of the inference log"),
        "not-a-record": (tmp / "record.jsonl", "Line 2 of the inference log"),
        "other-columns": (tmp / "columns.jsonl", "The reference schema"),
        "few-rows": (tmp / "few.jsonl", "Not enough data to judge drift"),
    }
    cases["empty"][0].write_text("")
    cases["not-json"][0].write_text("".join(lines[:2]) + "{'time': 1}\n" + "".join(lines[2:]))
    cases["bad-last-line"][0].write_text(good + "{not json}\n")
    cases["not-a-record"][0].write_text(lines[0] + '{"time": "x"}\n' + "".join(lines[1:]))
    renamed = good.replace('"sepal_length"', '"sepal_len"')
    cases["other-columns"][0].write_text(renamed)
    cases["few-rows"][0].write_text("".join(lines[:10]))
    return cases


def _one_sentence(message: str, words: str) -> None:
    message = message.strip()
    assert words in message and message.startswith("error: "), message
    assert len(message.splitlines()) == 1 and message.endswith("."), message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "case", ["missing", "empty", "not-json", "other-columns", "few-rows", "typo"]
)
def test_bad_input_is_one_sentence_exit_2_and_nothing_is_written(cli_project, tmp_path, case):
    """Through ``python -m mlpipe monitor`` (each refused before Evidently is imported)."""
    good = (cli_project / "logs" / "inference.jsonl").read_text()
    out = tmp_path / "out"
    if case == "typo":
        (tmp_path / "typo.yaml").write_text("monitor:\n  min_row: 10\n")
        args = ["--params", str(tmp_path / "typo.yaml")]
        words = "Unknown key 'monitor.min_row' (did you mean 'min_rows'?)."
    else:
        log, words = _bad_logs(tmp_path, good)[case]
        args = ["--log", str(log)]
    proc = cli(cli_project, *args, "--out", str(out), "--check")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    _one_sentence(proc.stderr, words)
    assert not out.exists()


@pytest.mark.parametrize(
    "case, args, words",
    [
        ("bad-last-line", [], "Line 501 of the inference log"),
        ("not-a-record", [], "Line 2 of the inference log"),
        (None, ["--since", "yesterday"], "--since 'yesterday' is not an ISO 8601 time"),
        (None, ["--last", "0"], "--last must be at least 1, got 0."),
        (
            None,
            ["--labels", "labels.csv"],
            "The labels file labels.csv lacks the column(s) species",
        ),
        (None, ["--reference", "absent.csv"], "Data file 'absent.csv' does not exist."),
        (None, ["--schema", "labels.csv"], "Reference schema 'labels.csv' cannot be read as JSON"),
    ],
)
def test_more_bad_input_is_one_sentence_and_exit_2(
    cli_project, tmp_path, monkeypatch, capsys, case, args, words
):
    """The command's own ``main`` in this process (the sentences of ``python -m mlpipe``)."""
    monkeypatch.chdir(cli_project)
    monkeypatch.delenv("MLPIPE_HOME", raising=False)
    (cli_project / "labels.csv").write_text("request_id,label\nab,setosa\n")
    if case is not None:
        good = (cli_project / "logs" / "inference.jsonl").read_text()
        args = ["--log", str(_bad_logs(tmp_path, good)[case][0])]
    out = tmp_path / "out"
    assert main(["monitor", *args, "--out", str(out)]) == 2
    _one_sentence(capsys.readouterr().err, words)
    assert not out.exists()


def test_a_failed_run_leaves_the_last_outputs_as_they_were(project, runs, tmp_path):
    out = runs["normal"].files[0].parent
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(monitor.MonitorError):
        run(project, "normal", empty)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
