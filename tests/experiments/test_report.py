"""report.md / report.html / figures from synthetic results: an interrupted compare's report names
the missing runs and shows no empty rows; figures exist only for what varies."""

from __future__ import annotations

import struct

from trainwell.experiments import console_summary, suite_summary
from trainwell.experiments import figures as fig
from trainwell.experiments.report import table_lines, write_report

from .synthetic import add_histories, result_from

REF = [3.0, 3.1, 3.2]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_interrupted_report_uses_finished_runs_and_names_the_missing(tmp_path):
    result = result_from(
        tmp_path,
        {"a": REF, "b": [3.3, 3.4, None], "c": [None, None, None]},
        baselines=[{"model": "linear regression", "test_mae": 2.9}],
    )
    add_histories(result, {})
    write_report(result)
    md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    note = (
        "Incomplete: the compare was interrupted and 5 of 9 runs finished; this report uses only those. "
        "Not run yet: b (seed 2); c (seeds 0, 1, 2)."
    )
    assert note in md and note in page
    assert "–" not in md.split("## Advice")[0]  # no row of dashes for a variant that never ran
    assert [row[0] for row in table_lines(result)[1:]] == ["a", "b"] and table_lines(result)[2][1] == "2/3"
    assert "| c |" not in md and "**c**: no finished run yet, so no advice" in md  # listed where runs are named
    assert (
        "**a**: nothing to flag" in md and "c</b>: nothing to flag" not in page
    )  # only a finished run has nothing to flag
    assert "In short:" in md.split(note)[1] and "In short:" in page.split(note)[1]  # the headline follows the warning


def test_single_variant_has_no_difference_column_or_plot(tmp_path):
    result = result_from(tmp_path, {"recipe": REF})
    add_histories(result, {}, lr_decay=False)
    pngs = write_report(result)
    assert not any("Δ" in cell for cell in table_lines(result)[0])
    assert set(pngs) == {"curves.png"}  # nothing is compared, and the learning rate never changes


def test_figures_are_readable_width_and_differences_are_sorted(tmp_path):
    values = {
        "full recipe": REF,
        "no dropout": [x + 0.3 for x in REF],
        "no clipping": [x + 0.01 * i for i, x in enumerate(REF)],
        "no batchnorm": [x + 0.1 for x in REF],
    }
    result = result_from(tmp_path, values, name="ablation", baselines=[{"model": "linear regression", "test_mae": 2.8}])
    add_histories(result, {"no clipping": 200})  # one variant ran ten times longer
    pngs = write_report(result)
    assert set(pngs) == {"differences.png", "curves.png", "lr.png"}
    for data in pngs.values():
        assert png_size(data)[0] == int(fig.WIDTH * fig.DPI)
    assert fig._epoch_limit(fig._series(result, "val_mae")) == (
        22,
        "no clipping",
    )  # the others' 20 epochs, plus a margin
    assert not (tmp_path / "plots" / "test_metric.png").exists()


def test_baselines_that_coincide_share_one_label():
    assert fig._merge([(3.336, "linear regression"), (3.3361, "noise floor"), (3.76, "gradient boosting")]) == [
        (3.336, "linear regression = noise floor"),
        (3.76, "gradient boosting"),
    ]


def test_terminal_summaries_are_short(tmp_path):
    result = result_from(tmp_path, {"a": REF, "b": [x + 0.2 for x in REF]})
    result.advice_brief = {"a": "early stopping (3 of 3)", "b": "regularise less (2 of 3), early stopping (3 of 3)"}
    text = console_summary(result)
    lines = text.splitlines()
    assert sum(line.startswith("  advice [") for line in lines) == 2
    assert lines.index("In short:") > max(
        i for i, line in enumerate(lines) if line.startswith("  advice [")
    )  # the headline comes last
    short = suite_summary([result] * 6)  # the demo runs six experiments
    assert len(short.splitlines()) <= 40 and short.splitlines()[-1] == "advice for 12 variants: see the report"
