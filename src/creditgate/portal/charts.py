"""Small SVG charts drawn on the server: no chart library, nothing to download."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from markupsafe import Markup

PALETTE = ("#4f46e5", "#0d9488", "#d97706", "#db2777", "#2563eb", "#65a30d", "#7c3aed")


def _num(value: float) -> str:
    return f"{value:.1f}"


def bars(rows: Sequence[tuple[str, Decimal, str]], *, title: str) -> Markup:
    """Horizontal bars, one per (label, value, value as shown); negative ones in red, left."""
    width, label_w, row_h = 640, 170, 26
    height = max(1, len(rows)) * row_h + 10
    values = [float(v) for _, v, _ in rows] or [0.0]
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0
    plot_w = width - label_w - 90
    zero_x = label_w + (0 - low) / span * plot_w
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, value, shown) in enumerate(rows):
        y = 5 + i * row_h
        v = float(value)
        x = zero_x if v >= 0 else zero_x + v / span * plot_w
        w = abs(v) / span * plot_w
        colour = PALETTE[0] if v >= 0 else "#dc2626"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">{escape(label[:24])}</text>'
            f'<rect x="{_num(x)}" y="{y + 4}" width="{_num(max(w, 1))}" height="{row_h - 8}" '
            f'fill="{colour}"/>'
            f'<text x="{_num(max(x + w, zero_x) + 6)}" y="{y + 17}">'
            f"{escape(shown)}</text>"
        )
    parts.append(
        f'<line x1="{_num(zero_x)}" x2="{_num(zero_x)}" y1="0" y2="{height}" stroke="#888"/></svg>'
    )
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def stacked_days(days: Sequence[str], series: dict[str, list[Decimal]], *, title: str) -> Markup:
    """Vertical bars per day, stacked by series (e.g. credits by action), with a legend."""
    width, height, bottom, left = 640, 200, 24, 44
    n = max(1, len(days))
    totals = [sum((s[i] for s in series.values()), Decimal(0)) for i in range(len(days))]
    top = float(max(totals, default=Decimal(0))) or 1.0
    slot = (width - left - 6) / n
    bar_w = max(2.0, slot * 0.7)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 8}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="{left - 6}" y="12" text-anchor="end">{escape(_short(top))}</text>',
        f'<line x1="{left}" x2="{width}" y1="{height - bottom}" y2="{height - bottom}" '
        'stroke="#888"/>',
    ]
    plot_h = height - bottom - 10
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = float(height - bottom)
        for j, values in enumerate(series.values()):
            h = float(values[i]) / top * plot_h
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(bar_w)}" height="{_num(h)}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"/>'
            )
        if n <= 8 or i % max(1, n // 6) == 0:
            parts.append(
                f'<text x="{_num(x + bar_w / 2)}" y="{height - 6}" text-anchor="middle">'
                f"{escape(day[5:])}</text>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[j % len(PALETTE)]}"></span>'
        f"{escape(name)}</li>"
        for j, name in enumerate(series)
    )
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')  # noqa: S704


def distribution(
    values: Sequence[Decimal], *, median: Decimal | None, p90: Decimal | None, title: str
) -> Markup:
    """One dot per customer on a margin axis, with the median and 90th percentile marked."""
    width, height, pad = 640, 90, 30
    points = [float(v) for v in values]
    marks = [float(m) for m in (median, p90) if m is not None]
    low = min([0.0, *points, *marks])
    high = max([1.0, *points, *marks])
    span = (high - low) or 1.0

    def x_of(v: float) -> float:
        return pad + (v - low) / span * (width - 2 * pad)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{pad}" x2="{width - pad}" y1="50" y2="50" stroke="#888"/>',
        f'<text x="{pad}" y="70" text-anchor="middle">{_pct(low)}</text>',
        f'<text x="{width - pad}" y="70" text-anchor="middle">{_pct(high)}</text>',
    ]
    for i, v in enumerate(points):
        jitter = (i % 5) * 4 - 8
        parts.append(
            f'<circle cx="{_num(x_of(v))}" cy="{50 + jitter}" r="4" fill="{PALETTE[1]}" '
            'fill-opacity="0.7"/>'
        )
    for name, mark, colour in (("median", median, "#111"), ("p90", p90, "#d97706")):
        if mark is None:
            continue
        x = _num(x_of(float(mark)))
        parts.append(
            f'<line class="mark-{name}" x1="{x}" x2="{x}" y1="22" y2="62" stroke="{colour}" '
            f'stroke-width="2"/><text x="{x}" y="16" text-anchor="middle">{name} '
            f"{_pct(float(mark))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _short(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
