"""Small SVG charts drawn on the server: no chart library, nothing to download."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from html import escape

from markupsafe import Markup

from creditgate.domain.amounts import rounded_text

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


def ticks(low: Decimal, high: Decimal, *, least: Decimal, count: int = 4) -> list[Decimal]:
    """Round values for an axis over [low, high], 0 among them when the range holds it:
    about `count` steps of 1, 2 or 5 x 10^n, never finer than `least` (a cent, one minor
    unit of an asset), so that no two labels can share a value or crowd each other."""
    if high <= low:
        high = low + least
    raw = (high - low) / count
    step = next(c for c in (Decimal(m).scaleb(raw.adjusted()) for m in (1, 2, 5, 10)) if c >= raw)
    step = max(step, least)
    first = (low / step).to_integral_value(ROUND_FLOOR)
    last = (high / step).to_integral_value(ROUND_CEILING)
    return [(first + i) * step for i in range(int(last - first) + 1)]


def places_of(step: Decimal) -> int:
    """Decimals an axis needs to tell its ticks apart: 0.5 needs 1, 20 none."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _label_width(labels: Sequence[str]) -> int:
    # Room left of the plot for the longest tick label (about 7 units a character at 12px).
    return 12 + 7 * max((len(label) for label in labels), default=1)


def stacked_days(
    days: Sequence[str],
    series: dict[str, list[Decimal]],
    *,
    title: str,
    unit: str,
    least: Decimal = Decimal(1),
) -> Markup:
    """Vertical bars per day, stacked by series (e.g. credits by action), with a legend; the
    y axis has round ticks (never finer than `least`) and says its `unit` (e.g. "credits
    per day")."""
    width, height, bottom, top_pad = 640, 200, 24, 22
    n = max(1, len(days))
    totals = [sum((s[i] for s in series.values()), Decimal(0)) for i in range(len(days))]
    axis = ticks(Decimal(0), max(totals, default=Decimal(0)), least=least)
    places = places_of(axis[1] - axis[0]) if len(axis) > 1 else 0
    labels = [rounded_text(t, places, grouped=True) for t in axis]
    left = _label_width(labels)
    top = float(axis[-1]) or 1.0
    plot_h = height - bottom - top_pad
    slot = (width - left - 6) / n
    bar_w = max(2.0, slot * 0.7)

    def y_of(v: float) -> float:
        return height - bottom - v / top * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 8}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text class="unit" x="0" y="11">{escape(unit)}</text>',
    ]
    for tick, label in zip(axis, labels, strict=True):
        tick_y = _num(y_of(float(tick)))
        faint = "" if tick == 0 else ' stroke-opacity="0.3"'
        parts.append(
            f'<text x="{left - 6}" y="{_num(y_of(float(tick)) + 4)}" text-anchor="end">'
            f'{escape(label)}</text><line x1="{left}" x2="{width}" y1="{tick_y}" y2="{tick_y}" '
            f'stroke="#888"{faint}/>'
        )
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
    label: Callable[[Decimal], str],
    least: Decimal,
) -> Markup:
    """One line per series over the days (e.g. margin in USD per action and model), with
    round ticks on the y axis (0 among them, never finer than `least`, each written by
    `label`), and a legend. A day without a value (None: nothing happened) has no point;
    the line joins the days around it."""
    width, height, bottom, right, top_pad = 640, 220, 24, 24, 12
    values = [v for s in series.values() for v in s if v is not None] or [Decimal(0)]
    axis = ticks(min(Decimal(0), *values), max(Decimal(0), *values), least=least)
    labels = [label(t) for t in axis]
    left = _label_width(labels)
    low, high = float(axis[0]), float(axis[-1])
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
    for tick, text in zip(axis, labels, strict=True):
        y = _num(y_of(float(tick)))
        faint = "" if tick == 0 else ' stroke-opacity="0.3"'
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{_num(y_of(float(tick)) + 4)}" '
            f'text-anchor="end">{escape(text)}</text>'
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
