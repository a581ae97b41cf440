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
    width, height, pad = 640, 100, 30
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
    # The median is labelled above the axis and the p90 below it: close values stay legible.
    for name, mark, colour, y1, y2, text_y in (
        ("median", median, "#111", 22, 56, 16),
        ("p90", p90, "#b45309", 44, 80, 94),
    ):
        if mark is None:
            continue
        x = _num(x_of(float(mark)))
        parts.append(
            f'<line class="mark-{name}" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}" stroke="{colour}" '
            f'stroke-width="2"/><text x="{x}" y="{text_y}" text-anchor="middle">{name} '
            f"{_pct(float(mark))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _short(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"


DASHES = ("", "7 4", "2 3", "9 3 2 3")


def _dash(j: int) -> str:
    # Colour and dash pattern both tell series apart: the chart reads without colour too.
    dash = DASHES[(j // len(PALETTE) + j) % len(DASHES)]
    return f' stroke-dasharray="{dash}"' if dash else ""


def lines(
    days: Sequence[str],
    series: dict[str, list[Decimal | None]],
    *,
    title: str,
    prefix: str = "",
) -> Markup:
    """One line per series over the days (e.g. margin in USD per action and model), with the
    zero line, the highest and lowest value on the axis, and a legend. A day without a value
    (None: nothing happened) has no point; the line joins the days around it."""
    width, height, bottom, left, right, top_pad = 640, 220, 24, 64, 24, 12
    values = [float(v) for s in series.values() for v in s if v is not None] or [0.0]
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0
    plot_h = height - bottom - top_pad
    n = max(1, len(days))
    step = (width - left - right) / max(1, n - 1)

    def y_of(v: float) -> float:
        return top_pad + (high - v) / span * plot_h

    def x_of(i: int) -> float:
        return left + i * step if n > 1 else left + (width - left - right) / 2

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 8}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
    ]
    for value in sorted({high, 0.0, low}):
        y = _num(y_of(value))
        faint = "" if value == 0 else ' stroke-opacity="0.3"'
        sign = "-" if value < 0 else ""
        parts.append(
            f'<text x="{left - 6}" y="{_num(y_of(value) + 4)}" text-anchor="end">'
            f"{escape(sign + prefix + _short(abs(value)))}</text>"
            f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" stroke="#888"'
            f"{faint}/>"
        )
    for j, (name, points) in enumerate(series.items()):
        colour = PALETTE[j % len(PALETTE)]
        known = [(i, float(v)) for i, v in enumerate(points) if v is not None]
        coords = " ".join(f"{_num(x_of(i))},{_num(y_of(v))}" for i, v in known)
        parts.append(
            f'<g class="series" data-series="{escape(name)}">'
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"'
            f"{_dash(j)}/>"
        )
        if n <= 31 or len(known) == 1:
            parts.extend(
                f'<circle cx="{_num(x_of(i))}" cy="{_num(y_of(v))}" r="2.5" fill="{colour}"/>'
                for i, v in known
            )
        parts.append("</g>")
    for i, day in enumerate(days):
        if n <= 8 or i % max(1, n // 6) == 0:
            parts.append(
                f'<text x="{_num(x_of(i))}" y="{height - 6}" text-anchor="middle">'
                f"{escape(day[5:])}</text>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg width="26" height="10" aria-hidden="true"><line x1="1" x2="25" y1="5" y2="5" '
        f'stroke="{PALETTE[j % len(PALETTE)]}" stroke-width="3"{_dash(j)}/></svg> '
        f"{escape(name)}</li>"
        for j, name in enumerate(series)
    )
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')  # noqa: S704


def paired_bars(
    rows: Sequence[tuple[str, Decimal, Decimal]], *, names: tuple[str, str], title: str
) -> Markup:
    """Two horizontal bars per row (a fraction before and after a change), shown as percent."""
    width, label_w, row_h = 640, 170, 40
    height = max(1, len(rows)) * row_h + 10
    values = [float(v) for _, a, b in rows for v in (a, b)] or [0.0]
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0
    plot_w = width - label_w - 70
    zero_x = label_w + (0 - low) / span * plot_w
    colours = (PALETTE[0], PALETTE[2])
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, *pair) in enumerate(rows):
        y = 5 + i * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 22}" text-anchor="end">{escape(label[:24])}</text>'
        )
        for k, value in enumerate(pair):
            v = float(value)
            x = zero_x if v >= 0 else zero_x + v / span * plot_w
            w = abs(v) / span * plot_w
            bar_y = y + 3 + k * 16
            parts.append(
                f'<rect class="bar-{k}" x="{_num(x)}" y="{bar_y}" width="{_num(max(w, 1))}" '
                f'height="14" fill="{colours[k]}"/>'
                f'<text x="{_num(max(x + w, zero_x) + 6)}" y="{bar_y + 12}">{_pct(v)}</text>'
            )
    parts.append(
        f'<line x1="{_num(zero_x)}" x2="{_num(zero_x)}" y1="0" y2="{height}" stroke="#888"/></svg>'
    )
    legend = "".join(
        f'<li><span class="swatch" style="background:{colours[k]}"></span>{escape(name)}</li>'
        for k, name in enumerate(names)
    )
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')  # noqa: S704
