"""Fixed margins for the report's panel figures (curves.png, lr.png), in inches.

matplotlib's constrained layout measures every text of a figure again and again to place the
panels: about half a CPU second for each panel figure of a five-variant compare, as long as the
drawing itself. These figures hold the same kinds of text each time (titles, tick labels,
"epoch"), so their room is set once here instead.
"""

from __future__ import annotations

from typing import Any

SUPTITLE = 0.42  # above the panels: the figure's title, 12 pt
TITLE_LINE = 0.24  # one line of a panel's title, 11 pt
TICK_LABELS = 0.72  # left of the panels: y tick labels of up to six characters at 11 pt
Y_LABEL = 0.3  # and the y axis's label, when it has one
X_AXIS = 0.55  # below a panel: its x tick labels and "epoch"
LEGEND_ROW = 0.32  # below the panels: the baselines' legend, one row, 10 pt
RIGHT = 0.15
COLUMN_GAP = 0.25  # between panels side by side (they share their y ticks, shown at the left)


def fix_margins(fig: Any, rows: int, cols: int, title_lines: int, legend: bool, ylabel: bool) -> None:
    """Place a grid of rows x cols panels in `fig` with room for the texts around them:
    `title_lines` lines of title over each panel, a legend row below the grid, a y label."""
    width, height = fig.get_size_inches()
    left = TICK_LABELS + (Y_LABEL if ylabel else 0.0)
    top = SUPTITLE + TITLE_LINE * title_lines
    bottom = X_AXIS + (LEGEND_ROW if legend else 0.0)
    row_gap = X_AXIS + TITLE_LINE * title_lines  # the upper panel's x axis, the lower one's title
    panel_height = (height - top - bottom - (rows - 1) * row_gap) / rows
    panel_width = (width - left - RIGHT - (cols - 1) * COLUMN_GAP) / cols
    fig.subplots_adjust(
        left=left / width,
        right=1 - RIGHT / width,
        bottom=bottom / height,
        top=1 - top / height,
        hspace=row_gap / panel_height,
        wspace=COLUMN_GAP / panel_width,
    )
