"""The fitted transform from raw table columns to the model's float inputs, as plain data.

`fit_preprocess` computes every statistic from the training rows only and returns a dict of
lists, numbers and strings (saved in best.pt's spec, read back with weights_only=True);
`transform` applies it to any raw table, so evaluate and predict see exactly what training saw.

- numeric: blanks filled with the training median, plus a 0/1 missing-indicator column when
  the training rows had blanks; then RealMLP's robust scaling (centre on the median, divide by
  the interquartile range, or half the range when that is 0) and its smooth clipping
  z / sqrt(1 + (z/3)^2), which keeps z near the centre and tames extremes to below 3. With
  data.scaling auto, a skewed column (|skewness| > SKEWED: counts, sizes, waiting times) is instead
  mapped through its training quantiles to normal scores, so its long tail keeps its order rather
  than being clipped together near 3.
- date: year, month, day of week, day of year (and hour when times are given), each numeric;
  with data.date_onehot also day of week and month as one-hot columns, whose effects need not
  rise with the number (weekends, holiday months).
- categorical/boolean: a blank is its own level; a level unseen in training is "unknown".
  Few levels: one-hot (two levels: one column of -1/+1; unknown is all zeros). Many levels:
  one column of codes (0 = unknown, 1.. = levels) that the model's embedding layer reads.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from ..errors import DataError
from ..sections import DataConfig
from .columns import BOOLEAN, CATEGORICAL, DATE, NUMERIC, Column, as_text, is_date_column, numeric_values
from .target_scale import skewness

VERSION = 1
BLANK = "(blank)"  # the level of a blank cell in a categorical column
DATE_PARTS = ("year", "month", "day_of_week", "day_of_year")  # pandas .dt attributes
# date parts that data.date_onehot also gives as one-hot columns: part → (first value, names of its values)
DATE_CYCLES = {
    "day_of_week": (0, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")),
    "month": (1, ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")),
}
SMOOTH_CLIP = 3.0  # RealMLP's smooth-clip scale: |output| stays below this
SKEWED = 2.0  # |skewness| (unitless) above which data.scaling auto maps a column by its quantiles
QUANTILES = 128  # grid points of that map
MAX_EMBEDDING_WIDTH = 64  # cap of the width rule (fastai caps at 600, far more than tables here need)


def embedding_width(levels: int, fixed: int | None) -> int:
    """fastai's rule round(1.6 · levels^0.56): 8 levels → 5, 100 → 21, 1000 → 77 (capped)."""
    return fixed if fixed is not None else min(MAX_EMBEDDING_WIDTH, round(1.6 * levels**0.56))


def date_parts(col: Any, parts: list[str]) -> dict[str, np.ndarray]:
    """Each part of ISO dates as floats (NaN for blanks); time zones are dropped, times kept as written."""
    import pandas as pd

    text = col.astype("string").str.strip().str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "", regex=True)
    ts = pd.to_datetime(text, errors="coerce", format="ISO8601")
    return {p: getattr(ts.dt, p).to_numpy(dtype=np.float64, na_value=np.nan) for p in parts}


def _fit_numeric(name: str, x: np.ndarray, scaling: str) -> dict[str, Any]:
    present = x[~np.isnan(x)]
    if len(present) == 0:  # blank in every training row: a constant input
        return {
            "kind": NUMERIC,
            "name": name,
            "fill": 0.0,
            "center": 0.0,
            "factor": 0.0,
            "indicator": True,
            "clip": False,
        }
    median = float(np.median(present))
    if scaling == "auto" and abs(skewness(present)) > SKEWED:
        return _fit_quantiles(name, present, median, bool(np.isnan(x).any()))
    if scaling == "standard":
        center, spread = float(present.mean()), float(present.std())
        factor = 1.0 / spread if spread > 0 else 0.0
    else:
        q25, q75 = np.quantile(present, [0.25, 0.75])
        lo, hi = present.min(), present.max()
        center = median
        factor = 1.0 / (q75 - q25) if q75 > q25 else (2.0 / (hi - lo) if hi > lo else 0.0)
    indicator = bool(np.isnan(x).any())
    return {
        "kind": NUMERIC,
        "name": name,
        "fill": median,
        "center": center,
        "factor": float(factor),
        "indicator": indicator,
        "clip": scaling != "standard",
    }


def _fit_quantiles(name: str, present: np.ndarray, median: float, indicator: bool) -> dict[str, Any]:
    """A skewed column's map to normal scores: its distinct training quantiles and, for each, the normal
    quantile of the middle of the grid points it covers (a column of mostly zeros has one point for them)."""
    grid = np.quantile(present, np.linspace(0, 1, QUANTILES))
    values, first = np.unique(grid, return_index=True)
    last = np.r_[first[1:], len(grid)] - 1
    middle = (first + last) / 2 / (len(grid) - 1)
    scores = [NormalDist().inv_cdf(min(max(float(m), 0.001), 0.999)) for m in middle]  # within ±3.09
    entry = {"kind": NUMERIC, "name": name, "fill": median, "center": 0.0, "factor": 1.0, "indicator": indicator}
    return entry | {"clip": False, "quantiles": values.tolist(), "scores": scores}


def _fit_categorical(name: str, col: Any, cfg: DataConfig) -> dict[str, Any]:
    text = as_text(col)
    levels = sorted({BLANK if t is None else t for t in text})
    if len(levels) <= cfg.onehot_max_levels:
        encoding = "binary" if len(levels) == 2 else "onehot"
        return {"kind": CATEGORICAL, "name": name, "levels": levels, "encoding": encoding}
    width = embedding_width(len(levels) + 1, cfg.embedding_width)
    return {"kind": CATEGORICAL, "name": name, "levels": levels, "encoding": "embedding", "width": width}


def fit_preprocess(train: Any, columns: list[Column], cfg: DataConfig, where: str) -> dict[str, Any]:
    """The transform's statistics from the training rows `train` (a DataFrame)."""
    entries: list[dict[str, Any]] = []
    for c in columns:
        if c.role == NUMERIC:
            entries.append(_fit_numeric(c.name, numeric_values(train[c.name], c.name, where), cfg.scaling))
        elif c.role == DATE:
            text = train[c.name].dropna().astype(str).str.strip()
            parts = list(DATE_PARTS) + (["hour"] if (text.str.len() > 10).any() else [])
            values = date_parts(train[c.name], parts)
            entries.append(
                {
                    "kind": DATE,
                    "name": c.name,
                    "parts": [_fit_numeric(f"{c.name}.{p}", values[p], cfg.scaling) for p in parts],
                    "onehot": list(DATE_CYCLES) if cfg.date_onehot else [],
                }
            )
        elif c.role in (CATEGORICAL, BOOLEAN):
            entries.append(_fit_categorical(c.name, train[c.name], cfg))
    return {"version": VERSION, "columns": entries}


def _numeric_outputs(entry: dict[str, Any], x: np.ndarray) -> list[np.ndarray]:
    missing = np.isnan(x)
    filled = np.where(missing, entry["fill"], x)
    if "quantiles" in entry:  # outside the training range: the end scores
        return [np.interp(filled, entry["quantiles"], entry["scores"])] + (
            [missing * 1.0] if entry["indicator"] else []
        )
    z = (filled - entry["center"]) * entry["factor"]
    if entry["clip"]:
        z = z / np.sqrt(1.0 + (z / SMOOTH_CLIP) ** 2)
    return [z, missing.astype(np.float64)] if entry["indicator"] else [z]


def _categorical_outputs(entry: dict[str, Any], col: Any) -> list[np.ndarray]:
    index = {level: i for i, level in enumerate(entry["levels"])}
    codes = np.array([index.get(BLANK if t is None else t, -1) for t in as_text(col)])  # -1: unknown
    if entry["encoding"] == "embedding":
        return [(codes + 1).astype(np.float64)]
    if entry["encoding"] == "binary":
        return [np.select([codes == 0, codes == 1], [-1.0, 1.0], 0.0)]
    return [(codes == i).astype(np.float64) for i in range(len(entry["levels"]))]


def transform(df: Any, prep: dict[str, Any], where: str) -> np.ndarray:
    """The model's float32 inputs for the raw rows of `df`; extra columns are ignored."""
    needed = [e["name"] for e in prep["columns"]]
    missing = [n for n in needed if n not in df.columns]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise DataError(f"{where} lacks {len(missing)} column(s) the run was trained with: {shown}")
    outputs: list[np.ndarray] = []
    for e in prep["columns"]:
        col = df[e["name"]]
        if e["kind"] == NUMERIC:
            outputs += _numeric_outputs(e, numeric_values(col, e["name"], where))
        elif e["kind"] == DATE:
            if col.notna().any() and not is_date_column(col):
                raise DataError(
                    f"{where}: column {e['name']!r} was a column of ISO dates (YYYY-MM-DD) in training; it "
                    f"holds other text here"
                )
            values = date_parts(col, [p["name"].rsplit(".", 1)[1] for p in e["parts"]] + e.get("onehot", []))
            for p in e["parts"]:
                outputs += _numeric_outputs(p, values[p["name"].rsplit(".", 1)[1]])
            for part in e.get("onehot", []):  # a blank date is all zeros, as an unknown level
                first, labels = DATE_CYCLES[part]
                outputs += [(values[part] == first + i).astype(np.float64) for i in range(len(labels))]
        else:
            outputs += _categorical_outputs(e, col)
    return np.column_stack(outputs).astype(np.float32) if outputs else np.zeros((len(df), 0), np.float32)


def output_names(prep: dict[str, Any]) -> list[str]:
    """One name per model input column, in order (for reports and the embedding layout)."""
    names: list[str] = []
    for e in prep["columns"]:
        numeric = e["parts"] if e["kind"] == DATE else [e] if e["kind"] == NUMERIC else []
        for n in numeric:
            names += [n["name"]] + ([f"{n['name']} (missing)"] if n["indicator"] else [])
        for part in e.get("onehot", []):
            names += [f"{e['name']}.{part}={label}" for label in DATE_CYCLES[part][1]]
        if e["kind"] == CATEGORICAL:
            if e["encoding"] == "onehot":
                names += [f"{e['name']}={level}" for level in e["levels"]]
            else:
                names.append(e["name"] + (" (code)" if e["encoding"] == "embedding" else ""))
    return names


def embedded_layout(prep: dict[str, Any]) -> list[dict[str, int]]:
    """[{index, rows, width}] for each code column: its input index, table rows (levels + unknown), width."""
    layout = []
    names = output_names(prep)
    by_code = {e["name"] + " (code)": e for e in prep["columns"] if e.get("encoding") == "embedding"}
    for index, name in enumerate(names):
        if name in by_code:
            layout.append({"index": index, "rows": len(by_code[name]["levels"]) + 1, "width": by_code[name]["width"]})
    return layout


def level_summary(prep: dict[str, Any]) -> dict[str, str]:
    """Per column a short description of its encoding, for the printed roles."""
    out = {}
    for e in prep["columns"]:
        if e["kind"] == CATEGORICAL:
            enc = f"embedding width {e['width']}" if e["encoding"] == "embedding" else e["encoding"]
            out[e["name"]] = f"{len(e['levels'])} levels, {enc}"
        elif e["kind"] == DATE:
            out[e["name"]] = "→ " + ", ".join(p["name"].rsplit(".", 1)[1] for p in e["parts"])
            out[e["name"]] += "".join(f", {part} one-hot" for part in e.get("onehot", []))
        elif e["kind"] == NUMERIC and e["indicator"]:
            out[e["name"]] = "blanks → median + indicator"
    return out


def numeric_columns(spec: dict[str, Any]) -> list[int] | None:
    """Input indices of a table's numeric columns and date parts (what model.numeric_embedding
    embeds), without missing indicators, one-hot or code columns; None when the spec has no
    fitted columns (delivery, digits: every input is a number)."""
    prep = spec.get("preprocess")
    if prep is None:
        return None
    wanted = [p["name"] for e in prep["columns"] for p in (e.get("parts") or [e]) if p["kind"] == NUMERIC]
    found: list[int] = []
    for index, name in enumerate(output_names(prep)):  # in input order, so the names match one by one
        if len(found) < len(wanted) and name == wanted[len(found)]:
            found.append(index)
    return found


def embeddable_count(spec: dict[str, Any], input_shape: tuple[int, ...]) -> int | None:
    """How many input columns a numeric embedding would read (numeric_columns), every input of a table
    without fitted columns; None for images (scaling.auto_numeric_embedding decides by rows alone)."""
    found = numeric_columns(spec)
    if found is not None:
        return len(found)
    return input_shape[0] if len(input_shape) == 1 else None
