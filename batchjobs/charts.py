"""Pictures for the console, drawn on the server as inline, accessible SVG (no JS, no CDN).

Each chart function is pure: data in, markup out (a SafeString, every text escaped). Every SVG has
role="img", a <title> and a <desc> it is labelled by, and axis labels; the series functions turn raw
dataset arrays into what the charts draw.
"""

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
SERIES_COLOURS = ("#0073bb", "#aab7b8")  # this version, baseline: also told apart by pattern and legend text
WEEK_SECONDS = 7 * 24 * 3600


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.4g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _open(chart_id: str, title: str, desc: str, height: int) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" aria-labelledby="{cid}-title {cid}-desc">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
    ]


METRIC_ABBREVIATIONS = (
    ("normalized_discounted_cumulative_gain", "NDCG"),
    ("mean_reciprocal_rank", "MRR"),
    ("_at_", " @ "),
)


def short_metric_name(name: str) -> str:
    """`normalized_discounted_cumulative_gain_at_10` -> `NDCG @ 10`, so bar labels fit."""
    for long, short in METRIC_ABBREVIATIONS:
        name = name.replace(long, short)
    return name


def grouped_bars(
    chart_id: str, title: str, rows: Sequence[tuple[str, float, float | None]], series: tuple[str, str]
) -> SafeString:
    """Horizontal bars, two per row (e.g. a metric for this version and for the popularity baseline).

    `rows` are (label, first value, second value or None); values are drawn on one 0..max scale.
    """
    rows = list(rows)
    label_w, bar_h, gap, top = 200, 12, 10, 36
    plot_w = WIDTH - label_w - 70
    height = top + len(rows) * (2 * bar_h + gap) + 40
    peak = max([v for _, a, b in rows for v in (a, b) if v is not None] + [0.0]) or 1.0
    described = "; ".join(
        f"{label}: {series[0]} {_fmt(a)}, {series[1]} " + ("not measured" if b is None else _fmt(b))
        for label, a, b in rows
    )
    out = _open(chart_id, title, described or "No values.", height)
    # Legend: swatch + text, the second series also hatched so colour is not the only cue.
    out.append(
        f'<defs><pattern id="{escape(chart_id)}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{SERIES_COLOURS[1]}"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#545b64" stroke-width="2"/></pattern></defs>'
    )
    fills = (SERIES_COLOURS[0], f"url(#{escape(chart_id)}-hatch)")
    for i, name in enumerate(series):
        x = label_w + i * 200
        out.append(f'<rect x="{x}" y="8" width="14" height="14" fill="{fills[i]}"/>')
        out.append(f'<text x="{x + 20}" y="20" class="chart-text">{escape(name)}</text>')
    y = top
    for label, a, b in rows:
        out.append(
            f'<text x="{label_w - 8}" y="{y + bar_h + 4}" text-anchor="end" class="chart-text">'
            f"{escape(short_metric_name(label))}</text>"
        )
        for i, value in enumerate((a, b)):
            by = y + i * bar_h
            if value is None:
                out.append(f'<text x="{label_w + 4}" y="{by + bar_h - 2}" class="chart-small">not measured</text>')
                continue
            w = max(0.0, value) / peak * plot_w
            out.append(f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h - 1}" fill="{fills[i]}"/>')
            out.append(
                f'<text x="{label_w + w + 4:.1f}" y="{by + bar_h - 2}" class="chart-small">{escape(_fmt(value))}</text>'
            )
        y += 2 * bar_h + gap
    axis_y = y
    out.append(f'<line x1="{label_w}" y1="{top - 4}" x2="{label_w}" y2="{axis_y}" class="chart-axis"/>')
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" class="chart-axis"/>')
    out.append(f'<text x="{label_w}" y="{axis_y + 16}" class="chart-small">0</text>')
    out.append(
        f'<text x="{label_w + plot_w}" y="{axis_y + 16}" text-anchor="end" class="chart-small">{_fmt(peak)}</text>'
    )
    out.append(
        f'<text x="{label_w + plot_w / 2:.0f}" y="{axis_y + 32}" text-anchor="middle" class="chart-text">'
        "Metric value (higher is better)</text>"
    )
    out.append("</svg>")
    return mark_safe("".join(out))


def _plot_frame(out: list[str], left: int, top: int, plot_w: int, plot_h: int, x_label: str, y_label: str) -> None:
    bottom = top + plot_h
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" class="chart-axis"/>')
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" class="chart-axis"/>')
    out.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{bottom + 36}" text-anchor="middle" class="chart-text">'
        f"{escape(x_label)}</text>"
    )
    cy = top + plot_h / 2
    out.append(
        f'<text x="14" y="{cy:.0f}" text-anchor="middle" transform="rotate(-90 14 {cy:.0f})" class="chart-text">'
        f"{escape(y_label)}</text>"
    )


def area_line(
    chart_id: str, title: str, points: Sequence[tuple[str, float]], x_label: str, y_label: str
) -> SafeString:
    """A line with the area under it, for a series over time: `points` are (x label, y >= 0)."""
    points = list(points)
    left, top, plot_w, plot_h = 64, 16, WIDTH - 90, 200
    height = top + plot_h + 48
    peak = max([y for _, y in points] + [0.0]) or 1.0
    if points:
        busiest = max(points, key=lambda p: p[1])
        desc = (
            f"{len(points)} points from {points[0][0]} to {points[-1][0]}; "
            f"highest {_fmt(busiest[1])} at {busiest[0]}; total {_fmt(sum(y for _, y in points))}."
        )
    else:
        desc = "No data."
    out = _open(chart_id, title, desc, height)
    _plot_frame(out, left, top, plot_w, plot_h, x_label, y_label)
    out.append(f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="chart-small">{_fmt(peak)}</text>')
    out.append(f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="chart-small">0</text>')
    if points:
        step = plot_w / max(1, len(points) - 1)
        coords = [(left + i * step, top + plot_h - y / peak * plot_h) for i, (_, y) in enumerate(points)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        area = f"{left:.1f},{top + plot_h} {line} {coords[-1][0]:.1f},{top + plot_h}"
        out.append(f'<polygon points="{area}" class="chart-area"/>')
        out.append(f'<polyline points="{line}" class="chart-line"/>')
        for index in sorted({0, len(points) // 2, len(points) - 1}):
            x = coords[index][0]
            anchor = "start" if index == 0 else "end" if index == len(points) - 1 else "middle"
            out.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" class="chart-small">'
                f"{escape(points[index][0])}</text>"
            )
    out.append("</svg>")
    return mark_safe("".join(out))


def log_curve(chart_id: str, title: str, values: Sequence[float], x_label: str, y_label: str) -> SafeString:
    """Values already sorted high to low (e.g. interactions per item by rank), y on a log10 scale."""
    values = [v for v in values if v > 0]
    left, top, plot_w, plot_h = 64, 16, WIDTH - 90, 200
    height = top + plot_h + 48
    out_desc = "No data."
    if values:
        out_desc = (
            f"{len(values)} items; the most popular has {_fmt(values[0])} interactions, the median "
            f"{_fmt(values[len(values) // 2])}, the least {_fmt(values[-1])}. Log scale."
        )
    out = _open(chart_id, title, out_desc, height)
    _plot_frame(out, left, top, plot_w, plot_h, x_label, y_label)
    if values:
        hi = math.log10(max(values))
        decades = max(1, math.ceil(hi))
        for d in range(decades + 1):
            y = top + plot_h - d / decades * plot_h
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="chart-grid"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="chart-small">{10**d:,}</text>')
        # At most ~plot_w points: sample ranks evenly so a million items stay a small SVG.
        n = len(values)
        ranks = sorted({round(i * (n - 1) / max(1, min(n, plot_w) - 1)) for i in range(min(n, plot_w))})
        step = plot_w / max(1, n - 1)
        line = " ".join(
            f"{left + r * step:.1f},{top + plot_h - math.log10(values[r]) / decades * plot_h:.1f}" for r in ranks
        )
        out.append(f'<polyline points="{line}" class="chart-line"/>')
        out.append(f'<text x="{left}" y="{top + plot_h + 16}" class="chart-small">1</text>')
        out.append(
            f'<text x="{left + plot_w}" y="{top + plot_h + 16}" text-anchor="end" class="chart-small">{n:,}</text>'
        )
    out.append("</svg>")
    return mark_safe("".join(out))


# --------------------------------------------------------------------------- series


def weekly_counts(timestamps: np.ndarray) -> list[tuple[str, int]]:
    """Interactions per week (weeks start on the first event's week; empty weeks count 0):
    [("YYYY-MM-DD" of the week's first day, count)]."""
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size == 0:
        return []
    start = int(ts.min())
    weeks = (ts - start) // WEEK_SECONDS
    counts = np.bincount(weeks)
    return [
        (datetime.fromtimestamp(start + i * WEEK_SECONDS, tz=UTC).strftime("%Y-%m-%d"), int(c))
        for i, c in enumerate(counts)
    ]


def popularity_curve(item_ids: np.ndarray) -> list[int]:
    """Interactions per item, most popular first."""
    if len(item_ids) == 0:
        return []
    _, counts = np.unique(np.asarray(item_ids, dtype=object).astype(str), return_counts=True)
    return sorted((int(c) for c in counts), reverse=True)
