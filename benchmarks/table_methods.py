"""The methods bench_tables.py compares, each fitted on the same training rows with one thread,
each holding out its own validation rows from them, and each returning test predictions:
a (rows,) array for regression, a (rows, classes) probability matrix (classes in sorted order)
for classification.

- trainwell: what a user runs — `trainwell train --data train.csv --target T` (the `tabular`
  preset) with the test rows given as data.test_path, then `trainwell predict` on the raw test
  file, through the library functions the CLI calls.
- lightgbm: 20% of the training rows for early stopping (100 rounds), learning rate 0.05.
- lightgbm-tuned: 32 trials drawn by the sampler `--search` uses (scrambled Sobol points,
  scipy.stats.qmc) over num_leaves, learning_rate, min_child_samples, feature_fraction, bagging
  and lambda_l2, each early-stopped on the same 20% as lightgbm and the best kept by its
  validation loss on those rows.
- trainwell-search: `trainwell train --data train.csv --target T --search 32` (the user's path,
  through trainwell.search), then `trainwell predict` with the saved ensemble.
- realmlp: pytabkit's RealMLP-TD with its published defaults (its own 20% validation split);
  it refuses blank numeric cells, which are reported as refused rather than filled in.
- linear: median fill + missing indicators, standardised numbers, one-hot categories (at most
  30 levels each), then ridge regression or logistic regression.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tables import Table


class Refused(Exception):
    """The method does not accept this table (the message says why)."""


# ---- features for the peers ------------------------------------------------------------------------


def _as_date(column: pd.Series) -> pd.Series | None:
    parsed = pd.to_datetime(column, errors="coerce", format="ISO8601")
    return parsed if parsed.notna().mean() > 0.9 else None


def peer_features(train: pd.DataFrame, test: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numbers as float, text as pandas categories (levels from the training rows), ISO dates as
    year/month/day-of-week/day-of-year, text unique on most rows (an identifier) left out — the
    same roles trainwell infers from a raw file."""
    out_tr, out_te = {}, {}
    for col in train.columns.drop(target):
        a, b = train[col], test[col]
        if a.dtype == bool or pd.api.types.is_numeric_dtype(a):
            out_tr[col], out_te[col] = a.astype(float), b.astype(float)
            continue
        dates = _as_date(a)
        if dates is not None:
            other = pd.to_datetime(b, errors="coerce", format="ISO8601")
            for part in ("year", "month", "dayofweek", "dayofyear"):
                out_tr[f"{col}_{part}"] = getattr(dates.dt, part).astype(float)
                out_te[f"{col}_{part}"] = getattr(other.dt, part).astype(float)
        elif a.nunique() <= 0.5 * len(a):
            levels = sorted(a.dropna().astype(str).unique())
            out_tr[col] = pd.Categorical(a.astype("string"), categories=levels)
            out_te[col] = pd.Categorical(b.astype("string"), categories=levels)
    return pd.DataFrame(out_tr), pd.DataFrame(out_te)


# ---- the methods ---------------------------------------------------------------------------------


def fit_lightgbm(table: Table, train: pd.DataFrame, test: pd.DataFrame, seed: int, classes: list[str]) -> np.ndarray:
    import lightgbm as lgb
    from sklearn.model_selection import train_test_split

    x_tr, x_te = peer_features(train, test, table.target)
    y = train[table.target]
    strat = y if table.task == "classification" else None
    fit_x, val_x, fit_y, val_y = train_test_split(x_tr, y, test_size=0.2, stratify=strat, random_state=seed)
    common = dict(n_estimators=5000, learning_rate=0.05, num_threads=1, random_state=seed, verbose=-1)
    stop = [lgb.early_stopping(100, verbose=False)]
    if table.task == "regression":
        model = lgb.LGBMRegressor(**common).fit(fit_x, fit_y, eval_set=[(val_x, val_y)], callbacks=stop)
        return model.predict(x_te)
    model = lgb.LGBMClassifier(**common).fit(fit_x, fit_y, eval_set=[(val_x, val_y)], callbacks=stop)
    return _in_order(model.predict_proba(x_te), [str(c) for c in model.classes_], classes)


# LightGBM's usual tuning space: (name, low, high, log scale, integer)
LGB_SPACE = (
    ("num_leaves", 4, 256, True, True),
    ("learning_rate", 0.01, 0.3, True, False),
    ("min_child_samples", 2, 100, True, True),
    ("feature_fraction", 0.4, 1.0, False, False),
    ("bagging_fraction", 0.5, 1.0, False, False),
    ("lambda_l2", 1e-3, 10.0, True, False),
)
LGB_TRIALS = 32  # as --search 32


def lgb_trials(n: int, seed: int) -> list[dict[str, Any]]:
    """n scrambled Sobol points (scipy.stats.qmc, as trainwell's search draws) over LGB_SPACE."""
    import warnings

    from scipy.stats import qmc

    with warnings.catch_warnings():  # Sobol's balance is best at powers of two; 32 is one
        warnings.simplefilter("ignore", UserWarning)
        points = qmc.Sobol(d=len(LGB_SPACE), scramble=True, seed=seed).random(n)
    trials = []
    for row in points:
        params: dict[str, Any] = {}
        for (name, low, high, log, integer), u in zip(LGB_SPACE, row):
            v = low * (high / low) ** u if log else low + (high - low) * u
            params[name] = int(round(v)) if integer else float(v)
        trials.append(params | {"bagging_freq": 1})
    return trials


def fit_lightgbm_tuned(
    table: Table, train: pd.DataFrame, test: pd.DataFrame, seed: int, classes: list[str]
) -> np.ndarray:
    import lightgbm as lgb
    from sklearn.model_selection import train_test_split

    x_tr, x_te = peer_features(train, test, table.target)
    y = train[table.target]
    strat = y if table.task == "classification" else None
    fit_x, val_x, fit_y, val_y = train_test_split(x_tr, y, test_size=0.2, stratify=strat, random_state=seed)
    kind = lgb.LGBMRegressor if table.task == "regression" else lgb.LGBMClassifier
    best, best_loss = None, np.inf
    for params in lgb_trials(LGB_TRIALS, seed):
        common = dict(n_estimators=5000, num_threads=1, random_state=seed, verbose=-1)
        model = kind(**common, **params).fit(
            fit_x, fit_y, eval_set=[(val_x, val_y)], callbacks=[lgb.early_stopping(100, verbose=False)]
        )
        loss = min(next(iter(model.evals_result_["valid_0"].values())))  # l2, or (multi-)log loss
        if loss < best_loss:
            best, best_loss = model, loss
    if table.task == "regression":
        return best.predict(x_te)
    return _in_order(best.predict_proba(x_te), [str(c) for c in best.classes_], classes)


def fit_realmlp(table: Table, train: pd.DataFrame, test: pd.DataFrame, seed: int, classes: list[str]) -> np.ndarray:
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    x_tr, x_te = peer_features(train, test, table.target)
    numeric = [c for c in x_tr.columns if not isinstance(x_tr[c].dtype, pd.CategoricalDtype)]
    blank = [c for c in numeric if x_tr[c].isna().any() or x_te[c].isna().any()]
    if blank:
        raise Refused(f"blank numeric cells in {', '.join(blank[:3])}")
    common = dict(random_state=seed, n_threads=1, device="cpu", verbosity=0)
    y = train[table.target]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if table.task == "regression":
            return np.asarray(RealMLP_TD_Regressor(**common).fit(x_tr, y.to_numpy(float)).predict(x_te)).ravel()
        model = RealMLP_TD_Classifier(**common).fit(x_tr, y)
        return _in_order(model.predict_proba(x_te), [str(c) for c in model.classes_], classes)


def fit_linear(table: Table, train: pd.DataFrame, test: pd.DataFrame, seed: int, classes: list[str]) -> np.ndarray:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x_tr, x_te = peer_features(train, test, table.target)
    cats = [c for c in x_tr.columns if isinstance(x_tr[c].dtype, pd.CategoricalDtype)]
    nums = [c for c in x_tr.columns if c not in cats]
    to_text = lambda f: f[cats].astype(object).where(f[cats].notna(), "(blank)")  # noqa: E731
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), nums),
            ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30), cats),
        ]
    )
    x_fit, x_new = x_tr.assign(**to_text(x_tr)), x_te.assign(**to_text(x_te))
    y = train[table.target]
    if table.task == "regression":  # RidgeCV picks its penalty by leave-one-out on the training rows
        model = make_pipeline(prep, RidgeCV(alphas=np.logspace(-3, 3, 13))).fit(x_fit, y.to_numpy(float))
        return model.predict(x_new)
    model = make_pipeline(prep, LogisticRegression(max_iter=3000)).fit(x_fit, y)
    return _in_order(model.predict_proba(x_new), [str(c) for c in model.classes_], classes)


def user_config(table: Table, folder: Path, seed: int, overrides: dict[str, Any]) -> Any:
    """What `trainwell train --data train.csv --target T` builds: the `tabular` preset on the raw CSV files."""
    from trainwell.config import load_config

    data = {
        "data.name": "csv",
        "data.path": str(folder / "train.csv"),
        "data.test_path": str(folder / "test.csv"),
        "data.target": table.target,
        "data.task": table.task,
    }
    # an ensemble trains seeds seed..seed+members-1: seeds 1000 apart keep the benchmark's seeds from sharing members
    settings = data | {"train.seed": seed * 1000, "train.threads": 1, "name": table.name} | overrides
    return load_config(preset="tabular", overrides=settings)


def fit_trainwell(
    table: Table, folder: Path, seed: int, classes: list[str], overrides: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The user's path: raw CSV files, the `tabular` preset, `predict` on the raw test rows.
    Returns the predictions and the run's metrics.json (engine, epochs)."""
    from trainwell.checkpoint import BEST, load_checkpoint
    from trainwell.inference import predict_run
    from trainwell.runner import train

    cfg = user_config(table, folder, seed, overrides)
    run_dir = folder / f"run-{seed}-{len(list(folder.glob('run-*')))}"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        result = train(cfg, out=run_dir, quiet=True)
        predicted = predict_run(result.run_dir, folder / "test.csv")
    if table.task == "regression":
        return predicted[f"predicted_{table.target}"].to_numpy(float), result.metrics
    spec = load_checkpoint(result.run_dir / "best.pt", BEST)["spec"]
    temperature = spec.get("calibration", {}).get("temperature")
    return predicted[[f"probability_{c}" for c in classes]].to_numpy(float), result.metrics | {
        "temperature": temperature
    }


def fit_trainwell_search(
    table: Table, folder: Path, seed: int, classes: list[str], overrides: dict[str, Any], dials: list[str] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The user's path with `--search 32`: trainwell.search on the raw CSV files (the `tabular`
    preset, the sampler seeded by train.seed), then `predict` with the saved ensemble."""
    import trainwell
    from trainwell.inference import predict_run

    cfg = user_config(table, folder, seed, overrides)
    out = folder / f"search-{seed}-{len(list(folder.glob('search-*')))}"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        result = trainwell.search(cfg, SEARCH_TRIALS, out=out, dials=dials)
        predicted = predict_run(result.ensemble_dir, folder / "test.csv")
    s = result.summary
    info = {
        "members": s.get("ensemble_members"),
        "distinct": s.get("ensemble_size"),
        "folds": s.get("folds"),
        "saved_members": s.get("saved_members"),
        "cost_ratio": s.get("cost_ratio"),
        "default_in_search_test": s.get("default_test"),
        "search_test": s.get("ensemble_test"),
    }
    if table.task == "regression":
        return predicted[f"predicted_{table.target}"].to_numpy(float), info
    return predicted[[f"probability_{c}" for c in classes]].to_numpy(float), info


SEARCH_TRIALS = 32  # the issue's --search 32


def _in_order(prob: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    return prob[:, [have.index(c) for c in want]]


PEERS = {"lightgbm": fit_lightgbm, "realmlp": fit_realmlp, "linear": fit_linear, "lightgbm-tuned": fit_lightgbm_tuned}
METHODS = ("trainwell", *PEERS, "trainwell-search")
