"""A tiny SVG plotter for the HTML report: scatter plots, histograms and a host timeline.

Plots are rendered once, when the report is built, as inline SVG text: the report needs no
plotting library, no JavaScript and no network to show them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

STATE_COLORS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#ef6c00",
    "running": "#0277bd",
    "stale": "#8e24aa",
    "interrupted": "#f9a825",
    "unreadable": "#6d4c41",
    "pending": "#9e9e9e",
}
DEFAULT_COLOR = "#455a64"
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 24, 44


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    return ticks


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    start: float
    end: float
    log: bool = False
    integer: bool = False

    @classmethod
    def fit(cls, values: Sequence[float], start: float, end: float, log: bool = False, pad: float = 0.05) -> Axis:
        if log:
            values = [math.log10(v) for v in values if v > 0]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi == lo:
            lo, hi = lo - (abs(lo) * 0.5 or 0.5), hi + (abs(hi) * 0.5 or 0.5)
        span = hi - lo
        return cls(lo - span * pad, hi + span * pad, start, end, log)

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(value) if value > 0 else self.lo
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0**k for k in range(math.ceil(self.lo), math.floor(self.hi) + 1)]
        ticks = [t for t in nice_ticks(self.lo, self.hi) if self.lo <= t <= self.hi]
        return [t for t in ticks if t == int(t)] if self.integer else ticks


def wants_log(values: Sequence[float]) -> bool:
    """Log scale for positive values spanning more than two decades (learning rates)."""
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(positive) > 1 and max(positive) / min(positive) >= 100


def _frame(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
    ]


Ticks = Sequence[tuple[float, str]]


def _x_axis(
    x: Axis, left: float, width: int, height: int, label: str, grid: bool, ticks: Ticks | None = None
) -> list[str]:
    """The bottom axis: its line, tick marks (or full-height grid lines), tick labels and label.
    ``ticks``: (position, label) pairs instead of the axis' round numbers (categories)."""
    bottom = height - BOTTOM
    tick_top, tick_color = (TOP, "#eee") if grid else (bottom, "#333")
    out = [f'<line x1="{left}" y1="{bottom}" x2="{width - RIGHT}" y2="{bottom}" stroke="#333"/>']
    for tick, text in ticks if ticks is not None else [(t, fmt(t)) for t in x.ticks()]:
        px = x(tick)
        out.append(f'<line x1="{px:.1f}" y1="{tick_top}" x2="{px:.1f}" y2="{bottom + 4}" stroke="{tick_color}"/>')
        out.append(f'<text x="{px:.1f}" y="{bottom + 15}" text-anchor="middle">{escape(text)}</text>')
    out.append(
        f'<text x="{(left + width - RIGHT) / 2:.0f}" y="{height - 8}" text-anchor="middle" '
        f'font-weight="bold">{escape(label)}</text>'
    )
    return out


def _axes(
    x: Axis, y: Axis | None, width: int, height: int, x_label: str, y_label: str, x_ticks: Ticks | None = None
) -> list[str]:
    bottom, top = height - BOTTOM, TOP
    out = _x_axis(x, LEFT, width, height, x_label, grid=False, ticks=x_ticks)
    out.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT}" y2="{top}" stroke="#333"/>')
    if y is not None:
        for tick in y.ticks():
            py = y(tick)
            out.append(f'<line x1="{LEFT - 4}" y1="{py:.1f}" x2="{width - RIGHT}" y2="{py:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{fmt(tick)}</text>')
    out.append(
        f'<text x="12" y="{(top + bottom) / 2:.0f}" text-anchor="middle" font-weight="bold" '
        f'transform="rotate(-90 12 {(top + bottom) / 2:.0f})">{escape(y_label)}</text>'
    )
    return out


def _point(cx: float, cy: float, tip: str, state: str) -> str:
    """A task's dot, colored by its state, its tooltip ``tip``."""
    color = STATE_COLORS.get(state, DEFAULT_COLOR)
    return (
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{color}" fill-opacity="0.75">'
        f"<title>{escape(tip)}</title></circle>"
    )


def scatter(
    points: Sequence[tuple[float, float, str, str]],
    *,
    x_label: str,
    y_label: str,
    width: int = 380,
    height: int = 260,
) -> str:
    """Points of (x, y, tooltip, state); log axes when values span decades."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    log_x, log_y = wants_log(xs), wants_log(ys)
    x = Axis.fit(xs, LEFT, width - RIGHT, log_x)
    y = Axis.fit(ys, height - BOTTOM, TOP, log_y)
    out = _frame(width, height, f"{y_label} vs {x_label}")
    out += _axes(x, y, width, height, x_label + (" (log)" if log_x else ""), y_label + (" (log)" if log_y else ""))
    out += [_point(x(px), y(py), tip, state) for px, py, tip, state in points]
    out.append("</svg>")
    return "\n".join(out)


def strip(
    points: Sequence[tuple[int, float, str, str]],
    categories: Sequence[str],
    *,
    x_label: str,
    y_label: str,
    width: int = 380,
    height: int = 260,
) -> str:
    """Points of (category index, y, tooltip, state): one column of points per category (a
    categorical parameter such as optimizer: [adam, sgd]), spread sideways so equal values show."""
    ys = [p[1] for p in points]
    log_y = wants_log(ys)
    x = Axis(-0.5, len(categories) - 0.5, LEFT, width - RIGHT)
    y = Axis.fit(ys, height - BOTTOM, TOP, log_y)
    room = max(3, int((width - LEFT - RIGHT) / max(1, len(categories)) / 6.5))
    labels = [(float(i), name if len(name) <= room else name[: room - 1] + "…") for i, name in enumerate(categories)]
    out = _frame(width, height, f"{y_label} vs {x_label}")
    out += _axes(x, y, width, height, x_label, y_label + (" (log)" if log_y else ""), x_ticks=labels)
    seen: dict[int, int] = {}
    for index, py, tip, state in points:
        k = seen[index] = seen.get(index, -1) + 1
        offset = ((k % 7) - 3) * 0.07
        out.append(_point(x(index + offset), y(py), tip, state))
    out.append("</svg>")
    return "\n".join(out)


def histogram(
    values: Sequence[float], *, label: str, bins: int | None = None, width: int = 380, height: int = 260
) -> str:
    """Counts of ``values`` in equal-width bins."""
    values = [v for v in values if math.isfinite(v)]
    out = _frame(width, height, f"histogram of {label}")
    if not values:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no values</text></svg>')
        return "\n".join(out)
    bins = bins or max(1, min(30, int(math.sqrt(len(values))) + 1))
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    size = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / size))] += 1
    x = Axis(lo, hi, LEFT, width - RIGHT)
    y = Axis(0, max(counts) * 1.1, height - BOTTOM, TOP, integer=True)
    out += _axes(x, y, width, height, label, "tasks")
    for i, count in enumerate(counts):
        left, right = x(lo + i * size), x(lo + (i + 1) * size)
        top = y(count)
        out.append(
            f'<rect x="{left + 0.5:.1f}" y="{top:.1f}" width="{max(0.5, right - left - 1):.1f}" '
            f'height="{y(0) - top:.1f}" fill="#1565c0"><title>{fmt(lo + i * size)}–{fmt(lo + (i + 1) * size)}: '
            f"{count} task(s)</title></rect>"
        )
    out.append("</svg>")
    return "\n".join(out)


def timeline(
    bars: Sequence[tuple[str, float, float, str, str]],
    *,
    width: int = 820,
    row: int = 9,
    label_width: int = 110,
    resolution: float = 0.25,
) -> str:
    """Bars of (lane, start, end, tooltip, state), seconds since the earliest start on the x axis.

    Overlapping bars of one lane (tasks run in parallel on one host) go on sub-rows; overlaps
    shorter than ``resolution`` (status.yaml times are whole seconds) do not open a new sub-row.
    """
    if not bars:
        out = _frame(width, 60, "timeline")
        out.append('<text x="20" y="34">no task has start and end times yet</text></svg>')
        return "\n".join(out)
    origin = min(b[1] for b in bars)
    span = max(max(b[2] for b in bars) - origin, 1e-3)
    lanes: dict[str, list[list[tuple[float, float, str, str]]]] = {}
    for lane, start, end, tip, state in sorted(bars, key=lambda b: (b[0], b[1])):
        rows = lanes.setdefault(lane, [])
        for sub in rows:
            if sub[-1][1] <= start + resolution:
                sub.append((start, end, tip, state))
                break
        else:
            rows.append([(start, end, tip, state)])
    height = TOP + sum(len(rows) * row + 8 for rows in lanes.values()) + BOTTOM
    left = label_width
    x = Axis(0, span, left, width - RIGHT)
    out = _frame(width, height, "tasks per host over time")
    out += _x_axis(x, left, width, height, "seconds since the first start", grid=True)
    top = TOP
    for lane, rows in lanes.items():
        lane_height = len(rows) * row
        out.append(
            f'<text x="{left - 6}" y="{top + lane_height / 2 + 4:.1f}" text-anchor="end">{escape(lane[:18])}</text>'
        )
        for i, sub in enumerate(rows):
            y = top + i * row
            for start, end, tip, state in sub:
                x0, x1 = x(start - origin), x(end - origin)
                color = STATE_COLORS.get(state, DEFAULT_COLOR)
                out.append(
                    f'<rect x="{x0:.1f}" y="{y + 1}" width="{max(1.0, x1 - x0):.1f}" height="{row - 2}" '
                    f'fill="{color}"><title>{escape(tip)}</title></rect>'
                )
        top += lane_height + 8
        out.append(f'<line x1="{left}" y1="{top - 4}" x2="{width - RIGHT}" y2="{top - 4}" stroke="#ddd"/>')
    out.append("</svg>")
    return "\n".join(out)
