"""curves.svg: losses, the validation metric and the learning rate against epochs.

Written as SVG by hand: matplotlib would add about three seconds of import and rendering to
every run, for three line charts. Any browser opens the file; it scales without blurring.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from .atomic import atomic_write

W, H, PAD = 330, 230, 46  # one panel's size and its margin for axis labels, in pixels


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values between lo and hi, 1, 2 or 5 times a power of ten apart, at most `most` of them."""
    if not hi > lo:
        return [lo]
    power = 10 ** math.floor(math.log10((hi - lo) / most))
    for step in (m * power for m in (1, 2, 5, 10, 20, 50)):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= most:
            return [round(k * step, 12) for k in range(first, last + 1)]
    return [lo, hi]  # pragma: no cover - a step of 50 powers always fits


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks for a log axis, as exponents (log10): powers of ten, thinned to at most 6; when the
    range spans less than two of them, round values of the quantity itself."""
    decades = [float(e) for e in range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)]
    if len(decades) >= 2:
        return decades[:: math.ceil(len(decades) / 6)]
    return [math.log10(v) for v in nice_ticks(10**lo, 10**hi, most=4) if v > 0]


def _panel(
    x0: int,
    title: str,
    series: list[tuple[str, str, list[float]]],
    epochs: list[int],
    log: bool,
    best_epoch: int | None,
) -> str:
    """One chart. Every panel shares a linear epoch axis; `log` makes the value axis logarithmic
    (said in the panel's title), with ticks at round values on both axes."""
    values = [v for _, _, vs in series for v in vs if math.isfinite(v) and (v > 0 or not log)]
    if not values or not epochs:
        return ""
    f = (lambda v: math.log10(v)) if log else (lambda v: v)  # noqa: E731
    lo, hi = f(min(values)), f(max(values))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    e0, e1 = min(epochs), max(max(epochs), min(epochs) + 1)
    px = lambda e: x0 + PAD + (e - e0) / (e1 - e0) * (W - PAD - 10)  # noqa: E731
    py = lambda u: 20 + (1 - (u - lo) / (hi - lo)) * (H - 20 - PAD)  # noqa: E731  (u: a value on the axis's scale)
    heading = f"{title} (log scale)" if log else title
    out = [
        f'<text x="{x0 + W / 2}" y="14" text-anchor="middle" font-size="13">{html.escape(heading)}</text>',
        f'<rect x="{x0 + PAD}" y="20" width="{W - PAD - 10}" height="{H - 20 - PAD}" fill="none" stroke="#999"/>',
    ]
    for u in log_ticks(lo, hi) if log else nice_ticks(lo, hi):
        label = f"{10**u:.3g}" if log else f"{u:.4g}"
        out.append(
            f'<line x1="{x0 + PAD - 3}" x2="{x0 + PAD}" y1="{py(u):.1f}" y2="{py(u):.1f}" stroke="#999"/>'
            f'<text x="{x0 + PAD - 5}" y="{py(u) + 4:.1f}" text-anchor="end" font-size="10">{label}</text>'
        )
    for e in nice_ticks(e0, e1):
        if e == int(e):  # epochs are whole numbers
            out.append(
                f'<line x1="{px(e):.1f}" x2="{px(e):.1f}" y1="{H - PAD}" y2="{H - PAD + 3}" stroke="#999"/>'
                f'<text x="{px(e):.1f}" y="{H - PAD + 14}" text-anchor="middle" font-size="10">{int(e)}</text>'
            )
    out.append(f'<text x="{x0 + W / 2}" y="{H - PAD + 28}" text-anchor="middle" font-size="11">epoch</text>')
    if best_epoch is not None:
        out.append(
            f'<line x1="{px(best_epoch):.1f}" x2="{px(best_epoch):.1f}" y1="20" y2="{H - PAD}" stroke="#888" '
            f'stroke-dasharray="3,3"/>'
        )
    for i, (label, color, vs) in enumerate(series):
        pts = " ".join(
            f"{px(e):.1f},{py(f(v)):.1f}" for e, v in zip(epochs, vs) if math.isfinite(v) and (v > 0 or not log)
        )
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        out.append(
            f'<text x="{x0 + PAD + 6}" y="{34 + 13 * i}" font-size="10" fill="{color}">{html.escape(label)}</text>'
        )
    return "\n".join(out)


def curves_svg(history: list[dict[str, Any]], title: str = "", best_epoch: int | None = None) -> str:
    epochs = [int(r["epoch"]) for r in history]
    metric = next((k for k in ("val_mae", "val_accuracy") if history and k in history[0]), None)
    losses = [
        ("train loss", "#1f77b4", [r["train_loss"] for r in history]),
        ("validation loss", "#ff7f0e", [r["val_loss"] for r in history]),
    ]
    log = all(v > 0 for _, _, vs in losses for v in vs if math.isfinite(v))
    panels = [_panel(0, "loss", losses, epochs, log, best_epoch)]
    if metric:
        panels.append(
            _panel(
                W,
                metric.replace("_", " "),
                [(metric, "#2ca02c", [r[metric] for r in history])],
                epochs,
                False,
                best_epoch,
            )
        )
    rates = [("lr", "#9467bd", [r["lr"] for r in history])]
    if history and "lr_min" in history[0]:  # an ensemble: its members' highest and lowest rate
        rates = [
            ("highest member", "#9467bd", rates[0][2]),
            ("lowest member", "#c5b0d5", [r["lr_min"] for r in history]),
        ]
    panels.append(_panel(W * len(panels), "learning rate", rates, epochs, True, None))
    width = W * len(panels)
    head = (
        f'<text x="{width / 2}" y="{H + 16}" text-anchor="middle" font-size="12">{html.escape(title)}'
        + (f" — best epoch {best_epoch}" if best_epoch else "")
        + "</text>"
    )
    body = "\n".join(panels)
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H + 24}" font-family="sans-serif">'
    return f"{svg}\n{body}\n{head}\n</svg>\n"


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "", best_epoch: int | None = None) -> None:
    text = curves_svg(history, title, best_epoch)
    atomic_write(path, lambda fh: fh.write(text), binary=False)
