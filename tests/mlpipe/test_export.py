"""Code tests of the reference batch scoring (``mlpipe.export.score_csv``, ``mlpipe score``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpipe import __main__ as cli
from mlpipe import export, serve, train


@pytest.fixture(scope="module")
def model():
    df = train.load_data()
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(
        df[train.FEATURES], df[train.TARGET]
    )


def _csv(tmp_path, value: str = "1.4"):
    """Five Iris rows as a CSV file, with ``value`` as petal_length of data row 4."""
    lines = train.load_data()[train.FEATURES].head(5).to_csv(index=False).splitlines()
    cells = lines[4].split(",")
    cells[2] = value
    lines[4] = ",".join(cells)
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("value", "shown"), [("1e308", "1e+308"), ("-2", "-2.0"), ("10.5", "10.5")]
)
def test_score_csv_refuses_a_value_outside_the_valid_range(model, tmp_path, value, shown):
    with pytest.raises(serve.ServeError) as err:
        export.score_csv(
            model, train.FEATURES, _csv(tmp_path, value), tmp_path / "out.csv", (0.0, 10.0)
        )
    assert str(err.value) == (
        f"Column petal_length has {shown} in data row 4, outside the valid range [0.0, 10.0] "
        "(validate.feature_min and feature_max); nothing was scored."
    )
    assert not (tmp_path / "out.csv").exists()


def test_score_csv_scores_values_within_the_range(model, tmp_path):
    rows = export.score_csv(
        model, train.FEATURES, _csv(tmp_path, "10.0"), tmp_path / "out.csv", (0.0, 10.0)
    )
    assert rows == 5 and (tmp_path / "out.csv").is_file()


def _registered(model):
    ref = SimpleNamespace(name="iris-classifier", version="1", columns=list(train.FEATURES))
    return lambda: (ref, model)


def test_cli_score_refuses_1e308_with_exit_2_and_writes_nothing(
    model, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(cli, "_registered_model", _registered(model))
    path = _csv(tmp_path, "1e308")
    code = cli.main(["score", "--data", str(path), "--out", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: Column petal_length has 1e+308 in data row 4, outside")
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_cli_score_takes_the_range_from_the_params_file(model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_registered_model", _registered(model))
    (tmp_path / "params.yaml").write_text("validate:\n  feature_max: 100.0\n")
    path = _csv(tmp_path, "20")  # outside the built-in [0, 10], inside this file's range
    out = tmp_path / "out.csv"
    args = [
        "score",
        "--data",
        str(path),
        "--out",
        str(out),
        "--params",
        str(tmp_path / "params.yaml"),
    ]
    assert cli.main(args) == 0, capsys.readouterr().err
    assert out.is_file()
