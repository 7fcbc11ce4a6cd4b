"""Comparing training choices: plan every run of one or more experiments, validate them all,
run them in one worker pool, then summarise, advise and report.

`compare` runs one experiment into OUT; `compare_many` runs several into OUT/<name>/ each and
adds OUT/report.html over all of them (what `trainwell demo` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from .. import advice as adv
from .. import paths, rundir, sweep_advice
from ..errors import ConfigError, TrainwellError, shown
from ..metric_names import default_metric, metric_problem
from .executors import make_executor
from .figures import warm_up
from .headline import brief, suite_headline
from .out_folder import REPORT_HTML, REPORT_MD, RESULTS, SPEC, check_out
from .presets import DEMO, preset_experiment
from .report import (
    PLOTS,
    ExperimentResult,
    html_page,
    html_section,
    markdown,
    metric_of,
    metric_words,
    summary_rows,
    write_report,
)
from .runner import INTERRUPTED, Say, cores, plan_jobs, read_history, record, stderr_say, write_results
from .spec import Experiment, Run, expand, parse_experiment, slug
from .stats import number


def default_workers() -> int:
    # one worker per core, also for a small compare: training one in this process took less CPU
    # (15 against 20 s for --preset schedules) but more wall time on a quiet machine (20 against 15 s)
    return cores()


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return default_workers()
    if workers < 0:
        raise ConfigError(f"--workers {workers} is not allowed: an integer >= 1")
    return workers


def run_dirs(out: Path, runs: list[Run]) -> list[Path]:
    return [out / "runs" / slug(r.variant) / f"seed-{r.seed}" for r in runs]


def compare_many(
    experiments: list[Experiment],
    out: str | Path,
    workers: int | None = None,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
    say: Say | None = None,
    nested: bool = True,
    baselines: bool = True,
    cluster: str | None = None,
) -> list[ExperimentResult]:
    """Run every experiment's runs in one pool. With `nested`, experiment i writes to OUT/<name>/.
    `cluster`: a Dask scheduler address or "local" (executors.py); None runs on this machine."""
    say = say or stderr_say(quiet)
    names = [e.name for e in experiments]
    if len(set(names)) < len(names):
        raise ConfigError("two experiments share a name; give each its own")
    out = check_out(out, experiments, nested)
    workers = _check_workers(workers)
    # this machine's workers start at once: each imports torch (seconds) while this process validates
    # and plans; a cluster is reached only once everything is checked (nothing changes if it is not)
    executor = make_executor(None, workers) if cluster is None else None
    try:
        if executor is not None:
            executor.start(sum(len(e.variants) * len(e.seeds) for e in experiments))
        return _checked_run(experiments, out, nested, overrides, executor, cluster, workers, baselines, say)
    finally:
        if executor is not None:
            executor.close()


def _checked_run(
    experiments: list[Experiment],
    out: Path,
    nested: bool,
    overrides: dict[str, Any] | None,
    executor: Any,
    cluster: str | None,
    workers: int,
    baselines: bool,
    say: Say,
) -> list[ExperimentResult]:
    """Validate every config of every variant and every data set, then run (compare_many)."""
    folders = [out / slug(e.name) if nested else out for e in experiments]
    # every config of every variant is validated before the first run starts
    plans = [expand(e, overrides) for e in experiments]
    facts, tables = check_data([r for p in plans for r in p])
    rankings = [ranking(e, p, facts) for e, p in zip(experiments, plans)]
    dirs = [run_dirs(f, p) for f, p in zip(folders, plans)]
    for d in (d for ds in dirs for d in ds):
        paths.check_text(d, "run directory")
    for f, e in zip(folders, experiments):
        f.mkdir(parents=True, exist_ok=True)
        _write_spec(f, e)
    stack = all(e.stack for e in experiments)
    # before planning, which clears stale run directories: an unreachable cluster changes nothing
    executor = executor or make_executor(cluster, workers)
    try:
        for e, r in zip(experiments, rankings):
            say(f"{e.name}: {data_line(r)}")

        def table_of(run: Run) -> tuple[int, int | None] | None:  # what "auto" fields are resolved with (disk_state)
            return tables.get(repr(run.config.data))

        return _run_and_report(executor, experiments, folders, plans, dirs, stack, baselines, say, rankings, table_of)
    finally:
        executor.close()


def _run_and_report(
    executor: Any,
    experiments: list[Experiment],
    folders: list[Path],
    plans: list[list[Run]],
    dirs: list[list[Path]],
    stack: bool,
    baselines: bool,
    say: Say,
    rankings: list[dict[str, Any]],
    table_of: Callable[[Run], tuple[int, int | None] | None],
) -> list[ExperimentResult]:
    import time

    all_runs = [r for p in plans for r in p]
    all_dirs = [d for ds in dirs for d in ds]
    jobs, kept = plan_jobs(all_runs, all_dirs, stack, max(1, executor.workers), say, table_of)
    say(f"{adv.plural(len(all_runs), 'run')} ({adv.plural(len(jobs), 'job')}) on {executor.describe()}")

    started = time.perf_counter()
    baseline_rows: dict[int, list[dict[str, Any]]] = {}

    timings: dict[str, float] = {}

    def meanwhile() -> None:  # the parent is idle while workers train: fit the baselines now
        from threadpoolctl import threadpool_limits

        begun = time.perf_counter()
        with threadpool_limits(limits=1):  # one thread: the cores belong to the workers
            for i, (plan, e) in enumerate(zip(plans, experiments)):
                if baselines:
                    baseline_rows[i] = _baselines(plan, e.reference)
        timings["baselines"] = time.perf_counter() - begun
        warm_up()  # matplotlib's import off the report's path

    new_rows, complete = executor.run(jobs, say, meanwhile)
    seconds = time.perf_counter() - started
    timings["training"] = seconds  # wall seconds of the jobs (baselines fitted meanwhile, in this process)
    report_started = time.perf_counter()
    by_dir = {row["run_dir"]: row for row in kept + new_rows}
    results = []
    for i, (e, f, plan, ds) in enumerate(zip(experiments, folders, plans, dirs)):
        rows = [by_dir.get(str(d)) or _missing(r, d) for r, d in zip(plan, ds)]
        for row in rows:
            row["run_dir"] = (
                str(Path(row["run_dir"]).relative_to(f)) if Path(row["run_dir"]).is_relative_to(f) else row["run_dir"]
            )
        write_results(f / RESULTS, rows)
        result = summarise(e, f, plan, ds, rows, complete, baseline_rows.get(i, []), rankings[i])
        result.seconds = seconds
        write_report(result)
        results.append(result)
    for r in results:  # where a compare's wall time went, for benchmarks/bench_experiments.py
        r.timings = {**timings, "report": time.perf_counter() - report_started}
    return results


def compare(
    experiment: Experiment,
    out: str | Path,
    workers: int | None = None,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
    say: Say | None = None,
    baselines: bool = True,
    cluster: str | None = None,
) -> ExperimentResult:
    return compare_many(
        [experiment], out, workers, overrides, quiet, say, nested=False, baselines=baselines, cluster=cluster
    )[0]


def _missing(run: Run, run_dir: Path) -> dict[str, Any]:
    return record(
        run, run_dir, None, INTERRUPTED, "not run: the compare was interrupted; run the same command again to continue"
    )


def _write_spec(folder: Path, e: Experiment) -> None:
    body = {
        "name": e.name,
        "description": e.description,
        "base": e.base,
        "variants": e.variants,
        "seeds": e.seeds,
        "reference": e.reference,
        "stack": e.stack,
    }
    rundir.write_text_atomic(folder / SPEC, yaml.safe_dump(body, sort_keys=False))


def summarise(
    e: Experiment,
    folder: Path,
    plan: list[Run],
    dirs: list[Path],
    rows: list[dict[str, Any]],
    complete: bool,
    baselines: list[dict[str, Any]],
    rank: dict[str, Any] | None = None,
) -> ExperimentResult:
    metric = rank["metric"] if rank else metric_of(rows)
    result = ExperimentResult(e, folder, rows, metric, complete=complete, data=dict(rank or {}))
    result.summary = summary_rows(e, rows, metric)
    result.baselines = baselines
    per_variant: dict[str, list[list[adv.Advice]]] = {v: [] for v in e.variants}
    seeds: dict[str, list[int]] = {v: [] for v in e.variants}
    configs: dict[str, dict[str, Any]] = {}
    for run, d, row in zip(plan, dirs, rows):
        history = read_history(d)
        result.histories[(run.variant, run.seed)] = history
        configs.setdefault(run.variant, sweep_advice.flat_config(run.config))
        if row["status"] not in ("ok", "failed"):
            continue  # not finished: no advice from a partial curve
        per_variant[run.variant].append(
            adv.advise(history, adv.context_from_config(run.config, row.get("stop_reason")), row.get("error") or None)
        )
        seeds[run.variant].append(run.seed)
    means = {r["variant"]: number(r.get(f"{metric}_mean")) for r in result.summary}
    per_variant = sweep_advice.check_sweep(per_variant, configs, means, result.lower_is_better)
    for v, runs in per_variant.items():
        for seed, advices in zip(seeds[v], runs):
            result.run_advice[(v, seed)] = [a.message for a in advices]
    result.advice = {v: adv.summarise(a) for v, a in per_variant.items() if a}
    result.advice_brief = {v: line for v, a in per_variant.items() if (line := adv.brief(a))}
    return result


def check_data(runs: list[Run]) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[int, int | None]]]:
    """Load each distinct data set once before any run starts, so a missing file or folder stops
    the compare with one line instead of failing every run. Returns what each holds (data_facts) and
    what its runs' "auto" fields are resolved with (data.scaling_inputs), keyed by repr(DataConfig)."""
    from ..data import load_data, scaling_inputs  # lazy: `import trainwell.experiments` stays free of torch and pandas

    seen: dict[str, Run] = {}
    for run in runs:
        seen.setdefault(repr(run.config.data), run)
    facts, tables = {}, {}
    for key, run in seen.items():
        try:
            bundle = load_data(run.config.data)
        except TrainwellError as exc:
            raise type(exc)(f"experiment {run.experiment!r}, variant {run.variant!r}: {exc}") from None
        facts[key], tables[key] = data_facts(run.config.data, bundle), scaling_inputs(bundle)
    return facts, tables


def data_facts(cfg: Any, bundle: Any) -> dict[str, Any]:
    """Where the rows come from, how many there are in each split, the target and the task."""
    if cfg.name == "csv":
        source = str(cfg.path)
    else:
        source = f"{cfg.name} ({cfg.path})" if cfg.path else f"built-in {cfg.name}"
    split = [len(bundle.x_train), len(bundle.x_val), len(bundle.x_test)]
    target = bundle.target_name or "the class of each image"
    return {"source": source, "rows": sum(split), "split": split, "target": target, "task": bundle.task}


def ranking(e: Experiment, plan: list[Run], facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The data facts of the reference variant, how its classes are weighted, and the metric that
    ranks the variants (the experiment's, checked against the task, or the task's default)."""
    ref = next((r for r in plan if r.variant == e.reference), plan[0])
    fact = facts[repr(ref.config.data)]
    weighted = fact["task"] == "classification" and ref.config.train.class_weights != "none"
    metric = e.metric or "test_" + default_metric(ref.config.data.name, fact["task"], weighted)
    problem = metric_problem(metric, fact["task"])
    if problem:
        raise ConfigError(f"experiment {shown(e.name, 40)}: metric = {shown(metric)} is not allowed: {problem}")
    return {**fact, "metric": metric, "class_weights": "balanced" if weighted else "none"}


def data_line(rank: dict[str, Any]) -> str:
    """'data churn.csv: 400 rows (270/48/80 train/val/test), target churn, classification, classes weighted
    balanced; ranked by test ROC AUC'"""
    split = "/".join(map(str, rank["split"]))
    weights = f", classes weighted {rank['class_weights']}" if rank["task"] == "classification" else ""
    return (
        f"data {rank['source']}: {rank['rows']:,} rows ({split} train/val/test), target {rank['target']}, "
        f"{rank['task']}{weights}; ranked by {metric_words(rank['metric'])}"
    )


def _baselines(plan: list[Run], reference: str) -> list[dict[str, Any]]:
    """Baselines on the data of the runs (one data set per experiment: the first run's), with
    classes weighted as the reference variant's networks weight them."""
    from .baselines import fit_baselines  # lazy: `import trainwell.experiments` stays free of numpy

    if not plan:
        return []
    data_cfgs = {repr(r.config.data): r.config.data for r in plan}
    if len(data_cfgs) > 1:  # variants on different data: baselines would not be comparable in one table
        return []
    ref = next((r for r in plan if r.variant == reference), plan[0])
    try:
        return fit_baselines(next(iter(data_cfgs.values())), balanced=ref.config.train.class_weights != "none")
    except Exception:  # a baseline that cannot be fitted must not lose the experiment's report
        return []


def suite_report(results: list[ExperimentResult], out: str | Path, title: str = "trainwell demo") -> Path:
    """OUT/report.html and OUT/report.md over several experiments (their plots already made)."""
    out = Path(out)
    sections, md = [], [f"# {title}", ""]
    for r in results:
        pngs = {p: (r.out / "plots" / p).read_bytes() for p in PLOTS if (r.out / "plots" / p).exists()}
        sections.append(html_section(r, pngs))
        md.append(markdown(r, heading="##", plots=f"{slug(r.experiment.name)}/plots"))
    rundir.write_text_atomic(out / REPORT_HTML, html_page(title, sections, suite_intro(results)))
    rundir.write_text_atomic(out / REPORT_MD, "\n".join(md))
    return out / REPORT_HTML


def suite_intro(results: list[ExperimentResult]) -> str:
    """The top of the demo's page: each experiment's headline, linked to its section."""
    import html

    items = "".join(
        f'<li><a href="#{html.escape(r.experiment.name)}"><b>{html.escape(r.experiment.name)}</b></a>: '
        f"{html.escape(brief(r))}"
        f'<br><span class="note">{html.escape(r.experiment.description)}</span></li>'
        for r in results
    )
    missing = sum(len(r.missing) for r in results)
    note = f'<p class="incomplete">{html.escape(interrupted_line(results, ""))}</p>' if missing else ""
    overall = f"<p>{html.escape(suite_headline(results))}</p>" if suite_headline(results) else ""
    return f'{note}<div class="headline"><b>In short</b>{overall}<ul>{items}</ul></div>'


MAX_LINE = 199  # characters of a one-line message on stderr


def interrupted_line(results: list[ExperimentResult], command: str) -> str:
    """The one line an interrupted compare prints: how many runs finished, and how to continue."""
    total = sum(len(r.rows) for r in results)
    done = total - sum(len(r.missing) for r in results)
    line = f"interrupted: {done} of {total} runs finished; the report covers those; to continue, run: {command}"
    if not command or len(line) > MAX_LINE:  # one short line: a long command is better retyped from history
        line = f"interrupted: {done} of {total} runs finished; the report covers those; run the same command again to "
        line += "continue"
    return line


def demo(
    out: str | Path,
    seeds: int = 3,
    workers: int | None = None,
    quiet: bool = False,
    say: Say | None = None,
    cluster: str | None = None,
) -> tuple[list[ExperimentResult], Path]:
    """The tabular lesson's comparisons and the ablation on delivery, `seeds` seeds each, in one pool."""
    experiments = [
        parse_experiment(preset_experiment(name), source=f"preset {name}").with_seeds(seeds) for name in DEMO
    ]
    results = compare_many(experiments, out, workers, quiet=quiet, say=say, cluster=cluster)
    return results, suite_report(results, out)
