"""model.numeric_embedding "auto" on small tables: periodic when the table has at most
MAX_EMBEDDED_COLUMNS columns to embed (scaling.py, data/preprocess.embeddable_count)."""

import numpy as np
import pandas as pd
import yaml

from trainwell.config import load_config
from trainwell.data.columns import infer_roles
from trainwell.data.preprocess import embeddable_count, fit_preprocess, numeric_columns, output_names
from trainwell.runner import train
from trainwell.scaling import AUTO, MAX_EMBEDDED_COLUMNS, auto_numeric_embedding, scale_configs
from trainwell.sections import DataConfig


def test_small_tables_are_embedded_only_when_narrow():
    assert auto_numeric_embedding(AUTO, 3_000, MAX_EMBEDDED_COLUMNS) == "periodic"
    assert auto_numeric_embedding(AUTO, 3_000, 1) == "periodic"
    assert auto_numeric_embedding(AUTO, 3_000, MAX_EMBEDDED_COLUMNS + 1) == "none"  # a signal, an image's pixels
    assert auto_numeric_embedding(AUTO, 3_000, 0) == "none"  # nothing to embed
    assert auto_numeric_embedding(AUTO, 3_000, None) == "none"  # not known: the rows decide, as before
    assert auto_numeric_embedding(AUTO, 203_916, 500) == "periodic"  # big tables whatever their width
    assert auto_numeric_embedding("none", 3_000, 5) == "none"  # the user's choice stands


def test_the_start_line_gives_the_rule_that_chose():
    narrow, wide = load_config(preset="tabular"), load_config(preset="tabular")
    line = scale_configs([narrow], 3_000, 7).describe(3_000, lr=1e-3)
    assert narrow.model.numeric_embedding == "periodic"
    assert "numeric embedding periodic (auto: periodic with at most 44 columns to embed, 7 here)" in line
    line = scale_configs([wide], 3_000, 48).describe(3_000, lr=1e-3)
    assert wide.model.numeric_embedding == "none" and "; 48 here)" in line


def numbers_table(columns: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{j}": rng.normal(size=n) for j in range(columns)})
    frame["flag"] = rng.integers(0, 2, n)  # 0/1: a boolean column (one-hot), not embedded nor counted
    frame["y"] = np.where(frame["x0"] > 0.3, 1.0, -1.0) + frame["flag"] + rng.normal(0, 0.1, n)
    return frame


def test_the_columns_counted_are_those_the_embedding_reads():
    frame = numbers_table(3)
    config = DataConfig(name="csv", target="y")
    prep = fit_preprocess(frame, infer_roles(frame, "y", config, "t.csv"), config, "t.csv")
    spec = {"preprocess": prep}
    assert embeddable_count(spec, (len(output_names(prep)),)) == len(numeric_columns(spec)) == 3
    assert embeddable_count({}, (64,)) == 64  # a table of numbers without fitted columns: every input
    assert embeddable_count({}, (3, 32, 32)) is None  # images: the rows decide


def test_a_narrow_table_trains_with_the_embedding_and_a_wide_one_without(tmp_path):
    for name, columns, expected in (("narrow", 3, "periodic"), ("wide", MAX_EMBEDDED_COLUMNS + 1, "none")):
        numbers_table(columns).to_csv(tmp_path / f"{name}.csv", index=False)
        data = {"data.name": "csv", "data.path": str(tmp_path / f"{name}.csv"), "data.target": "y"}
        short = {"train.max_epochs": 2, "train.members": 2, "train.quiet": True}
        result = train(load_config(preset="tabular", overrides=data | short), out=tmp_path / name)
        saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())["model"]
        assert saved["numeric_embedding"] == expected
        assert result.metrics["engine"] == "vectorised"
