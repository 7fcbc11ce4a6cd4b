"""`trainwell.search`: the default run, every stack of candidates, the ensemble chosen from them,
and the report, in OUT; a search interrupted at any point continues when run again."""

from __future__ import annotations

import copy
import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import metric_names, rundir
from ..advice import plural
from ..build import resolve_mode
from ..compose import SEARCH
from ..config import RunConfig
from ..data import DataBundle, load_data, scaling_inputs
from ..errors import ConfigError
from . import ensemble, folds, report
from .distribute import connect, new_work, read_histories, train_on_cluster, values_at_rungs
from .engine import interrupted, run_stack, validation_views, view_names
from .halving import halver, rungs, stale_after
from .plan import (
    DEFAULT_DIR,
    DEFAULT_FOLDS,
    ENSEMBLE_DIR,
    REPORT_HTML,
    REPORT_MD,
    RUNS_DIR,
    TABLE,
    TIME_TRIALS,
    Plan,
    SearchConfig,
    check_base,
    check_budget,
    check_out,
    check_table,
    claim_out,
    default_out,
    make_plan,
)
from .selection import bagged_caruana, scorer

Say = Callable[[str], None]
MATTERS = 0.01  # a dial "mattered" when its spread of best validation values exceeds 1% of the best value


@dataclass
class SearchResult:
    out: Path
    summary: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    failed: bool = False  # no configuration, nor the default run, trained to finite weights
    message: str = ""

    @property
    def ensemble_dir(self) -> Path:
        return self.out / ENSEMBLE_DIR

    @property
    def report(self) -> Path:
        return self.out / REPORT_MD

    def lines(self) -> list[str]:
        """What `train --search` prints: the headline and where things are, or how to continue."""
        if self.interrupted:
            return [f"trainwell: {self.message}; what has finished is in {self.report}"]
        if self.failed:
            return [f"trainwell: {self.message}; the report is in {self.report}"]
        return [
            report.headline(self.summary),
            f"ensemble: {self.ensemble_dir}  (evaluate, predict and load_run take it); report: {self.report}",
        ]


def candidate_dirs(out: Path, plan: Plan) -> list[Path]:
    return [out / RUNS_DIR / f"c{i:02d}" for i in range(len(plan.configs))]


def search(
    config: RunConfig | dict[str, Any],
    trials: int | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    dials: list[str] | None = None,
    say: Say | None = None,
    seconds: float | None = None,
    data: DataBundle | None = None,
    select_on: str = "all",
    cluster: str | None = None,
    folds: int = DEFAULT_FOLDS,
) -> SearchResult:
    """Train `trials` configurations around `config` (the default, then Sobol points), as few
    stacks as their layouts allow, halving each stack at fixed epochs; choose an ensemble on the
    validation rows (engine.validation_views); write OUT/report.md and OUT/ensemble (a run directory).
    `seed` seeds the sampler (default: the config's train.seed); `dials` names the dials to vary;
    `seconds`: a training-time budget (default run and members) after which no further stack
    starts (with no `trials`, 64 are planned); `data`: rows in memory instead of the config's
    data (the scikit-learn estimators); `select_on`: "all" validation rows for early stopping
    and the choice, or "half" for each (engine.validation_views); `cluster`: a Dask scheduler
    address or "local", where the stacks train as tasks (distribute.py; the same result); `folds`: validation
    folds the chosen ensemble trains on (folds.py; 1: the search's own rows only), here even with a cluster."""
    if not isinstance(config, RunConfig):  # a raw config may say `search: N` itself
        config = dict(config)
        trials = config.pop(SEARCH, None) if trials is None else trials
        config.pop(SEARCH, None)
    # a copy: training resolves "auto" fields in place, and the caller's config must still fingerprint this search
    base = copy.deepcopy(config) if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    base.validate()
    if trials is None and seconds is None:
        raise ConfigError("say how large a search: a number of configurations (--search N), a --time budget, or both")
    trials = TIME_TRIALS if trials is None else trials
    sampler_seed = base.train.seed % 2**32 if seed is None else seed
    settings = SearchConfig(trials, sampler_seed, dials, seconds, select_on, folds).validate()
    check_base(base)
    say = say or (lambda _text: None)
    out_dir = Path(out) if out is not None else default_out(base, trials)
    check_out(out_dir)
    data = data if data is not None else load_data(base.data)
    check_table(data)
    plan = make_plan(base, settings, data.task, *scaling_inputs(data))
    check_budget(base, settings, len(data.x_train))
    stop_data, select_data, *views = validation_views(data, base.data.split_seed, select_on)
    if not _train(out_dir, plan, stop_data, views[0], cluster, say):
        return _stop(out_dir, plan, data)
    return _conclude(out_dir, plan, data, select_data, say)


def _train(out: Path, plan: Plan, stop_data: DataBundle, stop_view: str, cluster: str | None, say: Say) -> bool:
    """Claim OUT and train every stack, here or on the cluster (reached before OUT is touched); False when
    interrupted."""
    executor = connect(cluster) if cluster is not None else None
    try:
        if claim_out(out, plan):
            say(f"continuing the search in {out}")
        say(
            f"search: {len(plan.configs)} configurations in {len(plan.stacks)} "
            f"stack{'s' if len(plan.stacks) != 1 else ''}, "
            f"after the default run; halving at fractions of its epochs; members early-stop on {stop_view}"
        )
        if not _train_default(out, plan, stop_data, say):
            return False
        if executor is None:
            return _train_all(out, plan, stop_data, say)
        return _train_on(executor, out, plan, stop_data, say)
    finally:
        if executor is not None:
            executor.close()


def _train_default(out: Path, plan: Plan, stop_data: DataBundle, say: Say) -> bool:
    """The default run, first and alone (here, with --cluster too); False when interrupted. It is the
    comparison, its seeds are candidates of the ensemble, and the epochs it trained place the halving
    points (halving.rungs, halving.stale_after)."""
    say(f"the default run ({plural(plan.base.train.members, 'seed')})")
    if interrupted(run_stack([plan.base], [out / DEFAULT_DIR], stop_data)):
        return False
    epochs = int(_metrics(out / DEFAULT_DIR)["epochs_run"])
    plan.rungs, plan.stale = rungs(epochs, plan.base.train.max_epochs), stale_after(epochs)
    return True


def training_seconds(out: Path, plan: Plan) -> float:
    """Training seconds spent so far: the default run's and every finished member's (from disk, so a continued
    search counts them too)."""
    dirs = [out / DEFAULT_DIR, *candidate_dirs(out, plan)]
    return sum(float(_metrics(d).get("wall_seconds") or 0.0) for d in dirs)


def rung_values(plan: Plan, dirs: list[Path]) -> dict[int, list[float]]:
    """Per rung, the best monitored value each finished earlier configuration had reached by then."""
    return values_at_rungs(read_histories(dirs), plan.rungs, plan.base.train.monitor, resolve_mode(plan.base))


def stack_runs(out: Path, plan: Plan, k: int) -> tuple[list[RunConfig], list[Path]]:
    """Stack k's configs and run directories (the default run trains before every stack, alone)."""
    dirs = candidate_dirs(out, plan)
    return [plan.configs[i] for i in plan.stacks[k]], [dirs[i] for i in plan.stacks[k]]


def _train_on(executor: Any, out: Path, plan: Plan, stop_data: DataBundle, say: Say) -> bool:
    """Every stack as a task of the cluster (distribute.py); False when interrupted or a stack failed there."""
    stacks = [stack_runs(out, plan, k) for k in range(len(plan.stacks))]
    monitor, budget = plan.base.train.monitor, plan.search.seconds
    work = new_work(monitor, resolve_mode(plan.base), plan.rungs, plan.stale, budget, stacks)
    complete, left_out = train_on_cluster(executor, plan.base.name, stacks, stop_data, work, say)
    if left_out:
        say(f"--time {budget:g} spent before {len(left_out)} of the stacks started: they are left out")
    return complete


def _train_all(out: Path, plan: Plan, stop_data: DataBundle, say: Say) -> bool:
    """Each stack in turn (until a --time budget is spent); False when interrupted."""
    dirs, budget = candidate_dirs(out, plan), plan.search.seconds
    for k, stack in enumerate(plan.stacks):
        spent = training_seconds(out, plan)
        if k > 0 and budget is not None and spent >= budget:
            say(f"--time {budget:g} spent ({spent:.0f} s of training): {len(plan.stacks) - k} stacks left out")
            break
        cfgs, run_dirs = stack_runs(out, plan, k)
        c = cfgs[-1]
        say(
            f"stack {k + 1}/{len(plan.stacks)}: {len(stack)} configuration{'s' if len(stack) != 1 else ''}, "
            f"hidden {c.model.hidden}, batch {c.train.batch_size}, halving at epochs {plan.rungs or 'none'}"
        )
        earlier = rung_values(plan, [dirs[i] for s in plan.stacks[:k] for i in s])
        results = run_stack(cfgs, run_dirs, stop_data, halver(plan.rungs, earlier, stale=plan.stale))
        if interrupted(results):
            return False
    return True


def _stop(out: Path, plan: Plan, data: DataBundle) -> SearchResult:
    """Interrupted: report what has finished; the same command continues."""
    summary = _write_report(out, plan, data, None)
    done = f"{summary['finished']} of {summary['trials']}"
    msg = f"search interrupted after {done} configurations; run the same command to continue"
    return SearchResult(out, summary, interrupted=True, message=msg)


def _conclude(out: Path, plan: Plan, data: DataBundle, select_data: DataBundle, say: Say) -> SearchResult:
    """Caruana's selection on the choosing rows, from every finished configuration and the
    default's seeds (where the greedy additions start, so the ensemble is never worse than the
    default there); the default run trained again on the other validation folds and the saved ensemble the
    choice on every fold (folds.py); the ensemble's temperature fitted on all validation rows; the report."""
    dirs = candidate_dirs(out, plan)
    default_seeds = ensemble.seeds_of(plan.base, out / DEFAULT_DIR)
    pool = [ensemble.Candidate(plan.configs[i], dirs[i]) for i in ensemble.finished_members(dirs)] + default_seeds
    if not pool:
        summary = _write_report(out, plan, data, None)
        message = "no configuration of the search trained to finite weights; lower the learning rate range"
        return SearchResult(out, summary, failed=True, message=message)
    monitor = plan.base.train.monitor
    metric, mode = monitor.removeprefix("val_"), resolve_mode(plan.base)
    say(
        f"choosing the ensemble on {view_names(plan.search.select_on)[1]} from {len(pool)} members "
        f"(the default's {plural(len(default_seeds), 'seed')} among them)"
    )
    start = list(range(len(pool) - len(default_seeds), len(pool)))
    loaded: ensemble.Loaded = {}
    sel_outs, y_sel = ensemble.outputs(pool, select_data, select_data.x_val, loaded), select_data.y_val
    prior, temps = ensemble.prior_correction(plan.base, data), ensemble.choice_temperatures(data.task, pool)
    chosen = bagged_caruana(data.task, sel_outs, y_sel, metric, mode, data.target_scale, start, prior, temps)
    default_select = scorer(data.task, sel_outs, y_sel, metric, data.target_scale, prior, temps)(
        dict.fromkeys(start, 1)
    )
    picks, best_single = [pool[j] for j in chosen.picks], pool[chosen.single_best]
    n_folds = folds.usable_folds(plan.search.folds, len(data.x_train), len(data.x_val))
    if n_folds > 1:
        say(f"training the default run again on {n_folds - 1} more validation folds for the ensemble")
    members = folds.train_folds(out, picks, out / DEFAULT_DIR, data, n_folds, plan.base.data.split_seed, plan.stale)
    if members is None:
        return _stop(out, plan, data)
    cal = ensemble.calibrate(
        plan.base, data, ensemble.picked_val_outputs(data, select_data, sel_outs, chosen.picks, pool, loaded), picks
    )
    scores, single = ensemble.scores_on_test(data, members, best_single, cal, loaded)
    extra = {
        "selected_on": view_names(plan.search.select_on)[1],
        "members_early_stopped_on": view_names(plan.search.select_on)[0],
        "selection_value": chosen.score,
        "default_selection_value": default_select,
        "selection_held_out_gain": chosen.held_out_gain,
        "monitor": monitor,
        "picks": [folds.member_name(c) for c in members],  # every saved member, the other folds' too
        "folds": n_folds,
    }
    ensemble.save(out / ENSEMBLE_DIR, plan.base, members, chosen, scores | extra, cal)
    selection = {"chosen": chosen, "picks": picks, "scores": scores, "single": single, "default_select": default_select}
    selection |= {"folds": n_folds, "saved": len(members)}
    summary = _write_report(out, plan, data, selection)
    return SearchResult(out, summary)


def _candidate_rows(plan: Plan, dirs: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for values, d in zip(plan.values, dirs):
        m = rundir.read_json(d / rundir.METRICS) if (d / rundir.METRICS).exists() else {}
        rows.append(
            {
                "candidate": d.name,
                **values,
                "best_value": m.get("best_value"),
                "best_epoch": m.get("best_epoch"),
                "epochs": m.get("epochs_run"),
                "stop_reason": m.get("stop_reason", "not run"),
                "wall_seconds": m.get("wall_seconds"),
            }
        )
    return rows


def _write_report(out: Path, plan: Plan, data: DataBundle, selection: dict[str, Any] | None) -> dict[str, Any]:
    """report.md and search.csv over the configurations finished so far; returns the summary."""
    rows = _candidate_rows(plan, candidate_dirs(out, plan))
    default_m = _metrics(out / DEFAULT_DIR)
    main = metric_names.MAIN[data.task]
    mode = resolve_mode(plan.base)
    effects = report.dial_effects(plan.dials, plan.values, [r["best_value"] for r in rows], mode)
    # each member's share of its stack's seconds, and the chosen ensemble's training on the other folds
    search_seconds = sum(r["wall_seconds"] or 0.0 for r in rows) + folds.seconds(out)
    default_seconds = float(default_m.get("wall_seconds") or 0.0)
    summary: dict[str, Any] = {
        "name": plan.base.name,
        "trials": len(rows),
        "finished": sum(r["best_value"] is not None for r in rows),
        "stacks": len(plan.stacks),
        "rungs": plan.rungs,
        "monitor": plan.base.train.monitor,
        "main_metric": main,
        "main_higher_is_better": metric_names.mode_of(main) == "max",
        "stop_half": view_names(plan.search.select_on)[0],
        "select_half": view_names(plan.search.select_on)[1],
        "search_seconds": search_seconds,
        "default_seconds": default_seconds,
        # the whole search's training seconds (the default run's included) over the default run's, trained alone
        "cost_ratio": (search_seconds + default_seconds) / default_seconds if default_seconds else float("nan"),
        "default_name": f"{plan.base.name}, {plan.base.train.members} member(s)",
        "default_test": default_m.get(f"test_{main}"),
        "select_rows": len(data.x_val) // (2 if plan.search.select_on == "half" else 1),
        "top_dials": [e.dial for e in effects if e.spread > MATTERS * _best_abs(effects)],
    }
    chosen_lines: list[str] = []
    if selection is not None:
        sel, picks = selection["chosen"], selection["picks"]
        summary.update(
            ensemble_size=len(set(picks)),
            ensemble_members=len(picks),
            ensemble_test=selection["scores"].get(f"test_{main}"),
            ensemble_select=sel.score,
            single_test=selection["single"].get(f"test_{main}"),
            single_select=sel.single_score,
            held_out_gain=sel.held_out_gain,
        )
        summary["default_select"] = selection["default_select"]
        summary |= {"folds": selection["folds"], "saved_members": selection["saved"]}
        summary["fold_seeds"] = folds.fold_seeds(plan.base)
        chosen_lines = _chosen_lines(plan, picks)
    parts, title = report.blocks(summary, effects, chosen_lines), f"trainwell search: {plan.base.name}"
    rundir.write_text_atomic(out / REPORT_MD, report.render_markdown(title, parts))
    rundir.write_text_atomic(out / REPORT_HTML, report.render_html(title, parts))
    rundir.write_text_atomic(out / TABLE, _csv(rows))
    rundir.write_json(out / "summary.json", summary)
    return summary


def _chosen_lines(plan: Plan, picks: list[ensemble.Candidate]) -> list[str]:
    """One line per distinct member, most weighted first: its dial values, or which default seed."""
    lines = []
    for c, n in Counter(picks).most_common():
        if c.run_dir.name == DEFAULT_DIR:
            lines.append(f"{c.name} × {n}: the default, seed {c.cfg.train.seed + c.member}")
            continue
        values = ", ".join(f"{k} {_short(v)}" for k, v in plan.values[int(c.run_dir.name[1:])].items())
        lines.append(f"{c.name} × {n}: {values}")
    return lines


def _best_abs(effects: list[report.DialEffect]) -> float:
    values = [abs(best) for e in effects for _, best, _ in e.best_by_value]
    return min(values) if values else 0.0


def _metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / rundir.METRICS
    return rundir.read_json(path) if path.exists() else {}


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
