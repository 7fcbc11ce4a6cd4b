"""Column roles of a raw table: numeric, categorical, boolean, date, identifier or ignored.

Roles are inferred from the values (and overridden by the `data` config's lists), then shown
to the user before training. Text and boolean columns are categorical; a text column whose
values are unique per row is an identifier and left out, and so is a whole-number column unique
per row that is named like an id or rises with the row order (a row index such as R's `rownames`,
whatever its name); ISO dates become numeric parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError, shown
from ..sections import DataConfig

NUMERIC, CATEGORICAL, BOOLEAN, DATE, IDENTIFIER, IGNORED = (
    "numeric",
    "categorical",
    "boolean",
    "date",
    "identifier",
    "ignored",
)
USED_ROLES = (NUMERIC, CATEGORICAL, BOOLEAN, DATE)  # roles that feed the model
BOOLEAN_WORDS = ({"true", "false"}, {"yes", "no"}, {"y", "n"}, {"t", "f"})
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
ID_NAME = re.compile(r"(^|_)(id|key|uuid|index)$", re.IGNORECASE)
ROW_ORDER = "rising with the row order"
FLOAT_LIMIT = 1e150  # beyond this, squares in variance-type statistics overflow float64 (max ~1.8e308)


@dataclass
class Column:
    name: str
    role: str
    reason: str  # why this role, for the printed summary
    kept_by: str = "data.categorical"  # the config list that keeps an identifier as a feature


def as_text(values: Any) -> np.ndarray:
    """Canonical text of each cell (None for blanks), so 3, 3.0 and ' 3' name the same level
    whether or not pandas read the column as numbers (a blank turns an int column into floats)."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(str).to_numpy(dtype=object)  # no blanks in an int column
    if pd.api.types.infer_dtype(values, skipna=True) == "string":  # text only: strip, blanks → None
        text = values.astype(object).str.strip()
        return text.where(text.notna() & (text != ""), None).to_numpy(dtype=object)
    return _as_text_cell_by_cell(values)


def _as_text_cell_by_cell(values: Any) -> np.ndarray:
    import pandas as pd

    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
            out[i] = None
        elif isinstance(v, (bool, np.bool_)):
            out[i] = "True" if v else "False"
        elif isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()):
            out[i] = str(int(v))
        elif isinstance(v, (float, np.floating)):
            out[i] = repr(float(v))
        else:
            text = str(v).strip()
            out[i] = text if text else None
    return out


def is_date_column(col: Any) -> bool:
    present = col.dropna()
    if len(present) > 100 and not is_date_column(present.iloc[:100]):  # most text columns fail at once
        return False
    text = present.astype(str).str.strip()
    return len(text) > 0 and bool(text.str.match(ISO_DATE).all())


def _is_boolean(col: Any) -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return True
    present = col.dropna()
    if len(present) == 0:
        return False
    if pd.api.types.is_numeric_dtype(col):
        return set(np.unique(present.to_numpy())) <= {0, 1} and present.nunique() == 2
    words = {str(v).strip().lower() for v in present.unique()}
    return any(words == w for w in BOOLEAN_WORDS)


def _rises_with_row_order(col: Any) -> bool:
    """A row index: each value larger than the one in the row above (so unique per row too)."""
    values = col.to_numpy()
    return len(values) > 2 and bool((np.diff(values) > 0).all())


def infer_column(name: str, col: Any) -> Column:
    import pandas as pd

    present = col.dropna()
    if len(present) == 0:
        return Column(name, IGNORED, "every cell is blank")
    if present.nunique() == 1 and len(present) == len(col):
        return Column(name, IGNORED, "the same value in every row")
    if _is_boolean(col):
        return Column(name, BOOLEAN, "two values")
    unique_per_row = present.nunique() == len(col) and len(col) > 1
    if pd.api.types.is_numeric_dtype(col):
        integral = pd.api.types.is_integer_dtype(col)
        if unique_per_row and integral and ID_NAME.search(name):
            return Column(name, IDENTIFIER, "whole numbers unique per row, named like an id", "data.numeric")
        if unique_per_row and integral and _rises_with_row_order(col):
            return Column(name, IDENTIFIER, f"whole numbers unique per row, {ROW_ORDER}", "data.numeric")
        return Column(name, NUMERIC, "numbers")
    if is_date_column(col):
        return Column(name, DATE, "ISO dates")
    if unique_per_row:
        return Column(name, IDENTIFIER, "text unique per row")
    return Column(name, CATEGORICAL, f"text, {present.nunique()} levels")


def _row_index_kept(column: Column) -> Column:
    if column.role == IDENTIFIER and column.reason.endswith(ROW_ORDER):
        return Column(column.name, NUMERIC, "numbers (rising with the row order, but the only feature)")
    return column


def infer_roles(df: Any, target: str, cfg: DataConfig, where: str) -> list[Column]:
    """Every column but the target, with its role; the config's lists win over inference."""
    named = {r: list(getattr(cfg, r) or []) for r in ("categorical", "numeric", "ignore")}
    for field, names in named.items():
        for n in names:
            if n not in df.columns:
                raise DataError(
                    f"data.{field} names column {n!r}, which {where} does not have; columns are: "
                    f"{', '.join(map(str, df.columns))}"
                )
            if n == target:
                raise DataError(f"data.{field} names the target column {n!r}; list feature columns only")
    clash = set(named["categorical"]) & set(named["numeric"]) | (
        set(named["categorical"]) | set(named["numeric"])
    ) & set(named["ignore"])
    if clash:
        raise DataError(
            f"column {sorted(clash)[0]!r} is named in more than one of data.categorical, data.numeric and "
            f"data.ignore; name it once"
        )
    columns = []
    for name in (str(c) for c in df.columns if c != target):
        if name in named["ignore"]:
            columns.append(Column(name, IGNORED, "data.ignore"))
        elif name in named["categorical"]:
            columns.append(Column(name, CATEGORICAL, "data.categorical"))
        elif name in named["numeric"]:
            columns.append(Column(name, NUMERIC, "data.numeric"))
        else:
            columns.append(infer_column(name, df[name]))
    if not any(c.role in USED_ROLES for c in columns):
        columns = [_row_index_kept(c) for c in columns]  # a guessed row index beats no feature at all
    if not any(c.role in USED_ROLES for c in columns):
        raise DataError(
            f"{where} has no usable feature column (all are the target, ignored or identifiers); it needs at least one"
        )
    return columns


def numeric_values(col: Any, name: str, where: str) -> np.ndarray:
    """float64 values with NaN for blanks; refuses text, infinities and values near the float limit."""
    import pandas as pd

    values = pd.to_numeric(col, errors="coerce")
    suspect = values.isna() & col.notna()  # blanks read as text, or text that is not a number
    bad = suspect.copy()
    if suspect.any():
        bad[suspect] = col[suspect].astype(str).str.strip() != ""
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{where}: numeric column {shown(name)} has text {shown(col.iloc[row])} in file row {row + 2}; fix "
            f"it or list it in data.categorical"
        )
    x = values.to_numpy(dtype=np.float64)
    huge = np.abs(np.nan_to_num(x, nan=0.0, posinf=np.inf, neginf=np.inf)) > FLOAT_LIMIT
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        raise DataError(
            f"{where}: column {name!r} holds {float(x[row]):g} in file row {row + 2}, too close to the float "
            f"limit (1e308) for its statistics; "
            "rescale the column or drop such rows"
        )
    return x


def sniff_separator(df: Any, where: str) -> None:
    """A table read as one column whose header holds ';', tab or '|' was split at the wrong character."""
    if len(df.columns) != 1:
        return
    header = str(df.columns[0])
    for char, word in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if char in header:
            shown = "\\t" if char == "\t" else char
            raise DataError(
                f"{where}: the header looks {word}-separated ({header[:60]!r}); pass --set data.sep='{shown}' "
                f"to read it"
            )


def describe_roles(columns: list[Column], levels: dict[str, str]) -> list[str]:
    """Lines for the user: each role with its columns, and what happens to those left out."""
    lines = []
    for role in USED_ROLES:
        names = [c.name + (f" ({levels[c.name]})" if c.name in levels else "") for c in columns if c.role == role]
        if names:
            lines.append(f"columns {role}: {', '.join(names)}")
    for c in columns:
        if c.role == IDENTIFIER:
            lines.append(
                f"note: column {c.name!r} looks like an identifier ({c.reason}) and is left out; list it in "
                f"{c.kept_by} to keep it"
            )
        elif c.role == IGNORED:
            lines.append(f"note: column {c.name!r} is left out ({c.reason})")
    return lines
