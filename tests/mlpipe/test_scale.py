"""Tests of week 7's scaling out with Ray (``mlpipe.scale``, ``python -m mlpipe scale``).

The fast tier needs no cluster: the byte ranges, the split scoring run part by part
in this process (:func:`mlpipe.scale.run_locally`, the same driver code as on a
cluster) against week 5's ``score_csv``, and the one-sentence errors. The slow tier
starts a real head and a worker node (two ``ray start`` processes on 127.0.0.1),
scores a generated file there and runs a small Ray Tune search; the cluster's
processes, and only those, are ended in a ``finally``.
"""

from __future__ import annotations

import io
import math
import re
import sys

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from autograder import testkit
from mlpipe import __main__ as cli
from mlpipe import export, scale, serve, train
from mlpipe.config import ParamsError, ScaleParams

RANGE = (0.0, 10.0)


@pytest.fixture(scope="module")
def model():
    df = train.load_data()
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(
        df[train.FEATURES], df[train.TARGET]
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """3,000 generated rows (seed 3)."""
    return scale.generate(tmp_path_factory.mktemp("big") / "big.csv", 3000, seed=3)


def _split(model, path, out, parts: int):
    scorer = scale.PartScorer(model, train.FEATURES, RANGE)
    return scale.split_score(path, out, train.FEATURES, RANGE, parts, scale.run_locally(scorer))


# --- the generated file ----------------------------------------------------------------


def test_generate_is_seeded_iris_like_and_inside_the_valid_range(tmp_path, big):
    again = scale.generate(tmp_path / "again.csv", 3000, seed=3)
    other = scale.generate(tmp_path / "other.csv", 3000, seed=4)
    assert again.read_bytes() == big.read_bytes() != other.read_bytes()
    df = pd.read_csv(big)
    assert list(df.columns) == [*train.FEATURES, train.TARGET] and len(df) == 3000
    assert df[train.FEATURES].min().min() >= 0.1 and df[train.FEATURES].max().max() <= 9.9
    assert set(df[train.TARGET]) == {"setosa", "versicolor", "virginica"}
    means = df.groupby(train.TARGET)["petal_length"].mean()
    assert means["setosa"] < 2 < means["versicolor"] < means["virginica"]  # Iris-like


# --- byte ranges ----------------------------------------------------------------------


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_byte_ranges_cover_every_line_once_and_read_as_the_whole(big, parts):
    ranges = scale.byte_ranges(big, parts)
    data = big.read_bytes()
    assert ranges[0].start == len(scale.header(big)) and ranges[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(data[r.end - 1 : r.end] == b"\n" for r in ranges)  # cut at line ends only
    assert len(ranges) == parts
    whole = pd.read_csv(big)
    head = scale.header(big)
    frames = [scale.read_part(big, head, r)[0] for r in ranges]
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole)
    lines = [r.first_line for r in ranges]
    assert lines == [2 + sum(len(f) for f in frames[:k]) for k in range(len(frames))]


def test_byte_ranges_of_an_odd_file(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n\r\n3,4\r\n5,6")  # CRLF, a blank line, no final line end
    head = scale.header(path)
    for parts in (1, 2, 3, 5, 9):
        frames = [scale.read_part(path, head, r)[0] for r in scale.byte_ranges(path, parts)]
        joined = pd.concat(frames, ignore_index=True)
        pd.testing.assert_frame_equal(joined, pd.read_csv(path), check_dtype=False)
    (tmp_path / "head.csv").write_bytes(b"a,b\n")
    assert scale.byte_ranges(tmp_path / "head.csv", 4) == []


# --- split scoring, in this process ---------------------------------------------------


@pytest.mark.parametrize("parts", [1, 4, 9])
def test_split_scoring_writes_the_bytes_of_score_csv(model, big, tmp_path, parts):
    export.score_csv(model, train.FEATURES, big, tmp_path / "whole.csv", RANGE)
    rows, reports, recast = _split(model, big, tmp_path / "split.csv", parts)
    assert (tmp_path / "split.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert rows == 3000 and len(reports) == parts and recast == 0
    assert len({r.model for r in reports}) == 1 and len({r.worker for r in reports}) == 1


def test_a_column_typed_differently_in_one_part_is_written_as_the_whole_file_types_it(
    model, tmp_path
):
    lines = ["id,sepal_length,sepal_width,petal_length,petal_width,note"]
    lines += [f"{i},5.1,3.5,1.4,0.2,x" for i in range(40)]  # ids are integers here...
    lines += [f",6.{i % 10},3.0,4.5,1.5,{i}" for i in range(40)]  # ...missing here: floats
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n")
    export.score_csv(model, train.FEATURES, path, tmp_path / "whole.csv", RANGE)
    assert "\n0.0,5.1" in (tmp_path / "whole.csv").read_text()  # pandas writes id 0 as 0.0
    _, reports, recast = _split(model, path, tmp_path / "split.csv", 2)
    assert reports[0].dtypes["id"] == "int64" and recast >= 1
    assert (tmp_path / "split.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_the_header_comes_with_the_first_part_that_has_rows(model, tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("sepal_length,sepal_width,petal_length,petal_width\n" + "\n" * 50 + "5,3,1,0\n")
    export.score_csv(model, train.FEATURES, path, tmp_path / "whole.csv", RANGE)
    _split(model, path, tmp_path / "split.csv", 4)
    assert (tmp_path / "split.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [(2900, "sepal_width", "oops"), (2500, "petal_length", "1e308"), (10, "petal_width", "")],
)
def test_a_bad_row_anywhere_fails_as_score_csv_does_and_writes_nothing(
    model, big, tmp_path, row, column, value
):
    df = pd.read_csv(big, dtype=str)
    df.loc[row, column] = value
    df.loc[2990, "petal_width"] = "-1"  # a later problem in an earlier column
    path = tmp_path / "bad.csv"
    path.write_text(df.to_csv(index=False))
    with pytest.raises(serve.ServeError) as whole:
        export.score_csv(model, train.FEATURES, path, tmp_path / "whole.csv", RANGE)
    with pytest.raises(serve.ServeError) as split:
        _split(model, path, tmp_path / "split.csv", 5)
    assert str(split.value) == str(whole.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_a_part_that_is_not_csv_names_its_first_line(model, big, tmp_path):
    text = big.read_text().splitlines()
    text[2500] += ",1,2"
    path = tmp_path / "torn.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(serve.ServeError) as err:
        _split(model, path, tmp_path / "split.csv", 3)
    message = str(err.value)
    assert (
        message.startswith(f"{path} is not a readable CSV file (") and "part from line" in message
    )
    assert "\n" not in message and not (tmp_path / "split.csv").exists()


def test_common_dtype_is_the_type_of_the_column_read_whole():
    assert scale.common_dtype(["int64", "int64"]) == "int64"
    assert scale.common_dtype(["int64", "float64"]) == "float64"
    assert scale.common_dtype(["bool", "int64"]) == "object"
    assert scale.common_dtype(["object", "float64"]) == "object"
    whole = pd.read_csv(io.StringIO("a\n1\n\n2.5\n"))
    assert str(whole["a"].dtype) == scale.common_dtype(["int64", "float64"])


# --- bad input: one sentence, exit 2, nothing written ----------------------------------


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    err = capsys.readouterr().err
    return code, err


def test_an_unreachable_cluster_is_one_sentence_and_exit_2(big, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    address = f"127.0.0.1:{testkit.free_port()}"
    out = tmp_path / "scored.csv"
    args = ["scale", "score", "--address", address, "--input", str(big), "--out", str(out)]
    code, err = _cli(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: Cannot reach the Ray cluster at {address} (Connection refused)")
    assert list(tmp_path.iterdir()) == []
    code, err = _cli(capsys, "scale", "tune", "--address", address)
    assert code == 2 and err.startswith("error: Cannot reach the Ray cluster at")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("", "error: No Ray cluster address: pass --address HOST:PORT"),
        ("localhost", "error: The Ray address 'localhost' is not HOST:PORT or ray://HOST:PORT"),
        ("127.0.0.1:99999", "error: The Ray address '127.0.0.1:99999' is not HOST:PORT"),
    ],
)
def test_a_missing_or_malformed_address(big, tmp_path, capsys, monkeypatch, address, expected):
    monkeypatch.delenv(scale.ADDRESS_ENV, raising=False)
    code, err = _cli(
        capsys, "scale", "score", "--address", address, "--input", str(big), "--out", "x.csv"
    )
    assert code == 2 and err.startswith(expected) and len(err.strip().splitlines()) == 1


def test_a_missing_input_file_is_week_5s_sentence(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    args = ["scale", "score", "--address", "127.0.0.1:1", "--input", str(missing)]
    code, err = _cli(capsys, *args, "--out", str(tmp_path / "out.csv"))
    assert (code, err) == (2, f"error: The file to score, {missing}, does not exist.\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("  workers: -1\n", "error: scale.workers must be 0 (all CPUs) or more, got -1.\n"),
        ("  parts_per_worker: 0\n", "error: scale.parts_per_worker must be at least 1, got 0.\n"),
        ("  adress: x\n", "error: Unknown key 'scale.adress' (did you mean 'address'?).\n"),
        ("  connect_timeout: soon\n", "error: scale.connect_timeout must be float, got str"),
    ],
)
def test_a_bad_params_value_is_one_sentence(big, tmp_path, capsys, section, expected):
    params = tmp_path / "params.yaml"
    params.write_text("scale:\n" + section)
    out = tmp_path / "out.csv"
    for action in (["score", "--input", str(big), "--out", str(out)], ["tune"], ["generate"]):
        code, err = _cli(capsys, "scale", action[0], "--params", str(params), *action[1:])
        assert code == 2 and err.startswith(expected), (action, err)
    assert not out.exists()


def test_scale_params_defaults_are_valid_and_checked():
    assert ScaleParams().rows == 1_000_000
    with pytest.raises(ParamsError, match="scale.noise must be between 0 and 1"):
        ScaleParams(noise=2.0)
    assert math.isclose(ScaleParams(connect_timeout=0.5).connect_timeout, 0.5)


def test_generate_cli_writes_the_file(tmp_path, capsys):
    out = tmp_path / "g.csv"
    assert cli.main(["scale", "generate", "--rows", "200", "--seed", "1", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"200 Iris-like rows (seed 1) written to {out}\n"
    assert out.read_bytes() == scale.generate(tmp_path / "again.csv", 200, seed=1).read_bytes()


# --- slow tier: a head and a worker node, each its own `ray start` ----------------------


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node on 127.0.0.1, one CPU each; ended, exactly, afterwards."""
    local = scale.LocalCluster(workers=1, cpus=1)
    try:
        local.start(timeout=600)
        yield local
    finally:
        local.stop()
        assert local.running() == [], "processes of the test cluster outlived it"


def _env(home):
    return testkit.pipeline_env(MLPIPE_HOME=str(home), RAY_USAGE_STATS_ENABLED="0")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_scoring_on_a_head_and_a_worker_is_the_bytes_of_mlpipe_score(cluster, tmp_path):
    testkit.create_store(tmp_path)
    version = testkit.register_model(tmp_path)  # alias champion, as `mlpipe score` loads it
    env = _env(tmp_path)
    run = [sys.executable, "-m", "mlpipe"]
    testkit.run_ok(
        *run, "scale", "generate", "--rows", "100000", "--out", "big.csv", cwd=tmp_path, env=env
    )
    testkit.run_ok(*run, "score", "--data", "big.csv", "--out", "whole.csv", cwd=tmp_path, env=env)
    ran = testkit.run_ok(
        *run, "scale", "score", "--address", cluster.address, "--input", "big.csv",
        "--out", "split.csv", cwd=tmp_path, env=env, timeout=1200,
    )  # fmt: skip
    assert (tmp_path / "split.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    lines = ran.stdout.splitlines()
    assert lines[0] == f"scored 100000 rows with iris-classifier version {version} into split.csv"
    workers = [line for line in lines if "model loaded" in line]
    assert len(workers) == 2, ran.stdout
    assert len({re.search(r"node (\w+) pid", line)[1] for line in workers}) == 2  # two nodes
    assert all(line.endswith("model loaded 1 time(s)") for line in workers), ran.stdout
    assert sum(int(re.search(r": (\d+) parts", line)[1]) for line in workers) == 16


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_tune_search_on_the_cluster_logs_nested_runs_and_registers_the_best(cluster, tmp_path):
    import mlflow
    import optuna

    testkit.create_store(tmp_path)
    testkit.iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    (tmp_path / "params.yaml").write_text("track:\n  n_trials: 4\n  cv_folds: 3\n  seed: 7\n")
    ran = testkit.run_ok(
        sys.executable, "-m", "mlpipe", "scale", "tune", "--address", cluster.address,
        "--data", "iris.csv", "--params", "params.yaml", cwd=tmp_path, env=_env(tmp_path),
        timeout=1200,
    )  # fmt: skip
    assert "registered iris-classifier version 1 as 'challenger'" in ran.stdout
    client = testkit.mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("iris")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "tune-ray"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 5 and sorted(r.info.run_name for r in trials) == [
        f"trial-{n}" for n in range(4)
    ]
    assert {r.info.status for r in [parent, *trials]} == {"FINISHED"}
    assert all(set(r.data.params) >= {"C", "max_iter", "seed", "test_size"} for r in trials)
    # TPE's first trials are seeded random draws: the same C values as week 3's Optuna search
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=7))
    expected = [study.ask().suggest_float("C", 0.01, 100.0, log=True) for _ in range(4)]
    tried = {r.info.run_name: float(r.data.params["C"]) for r in trials}
    assert [tried[f"trial-{n}"] for n in range(4)] == pytest.approx(expected)
    assert len({r.data.tags["ray.worker"].split(" pid")[0] for r in trials}) == 2  # both nodes
    best = max(trials, key=lambda r: (r.data.metrics["cv_accuracy"], -int(r.info.run_name[6:])))
    assert testkit.aliases(tmp_path, "iris-classifier") == {"challenger": "1"}
    assert client.get_model_version("iris-classifier", "1").run_id == best.info.run_id
    model = mlflow.sklearn.load_model(client.get_model_version_download_uri("iris-classifier", "1"))
    assert (
        model.predict(testkit.iris_frame()[list(testkit.FEATURES)].head(3)).tolist()
        == ["setosa"] * 3
    )
