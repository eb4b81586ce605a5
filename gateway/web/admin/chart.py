"""A server-rendered SVG line chart (no JavaScript; CSP-safe presentation attributes only).

Values are integers per day; every text is escaped. The chart has a ``<title>`` and
``<desc>`` for screen readers, and the page shows the same figures in a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
COLOURS = ("#1f5fae", "#c0392b", "#2e8b57", "#8e44ad", "#d35400")


def _nice_max(value: int) -> int:
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value


def line_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]) -> str:
    """An inline ``<svg>`` with one polyline per named series over the day labels."""
    count = max(len(labels), 1)
    top = _nice_max(max((max(values, default=0) for _, values in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: int) -> float:
        return TOP + plot_h - plot_h * v / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-labelledby="chart-title chart-desc" class="chart">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<desc id="chart-desc">{escape(", ".join(name for name, _ in series))}, '
             f'du {escape(labels[0] if labels else "")} au {escape(labels[-1] if labels else "")}</desc>']
    for k in range(5):
        value = top * k // 4
        gy = y(value)
        parts.append(f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}" stroke="#ddd" '
                     f'stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#444">{value}</text>')
    for i, label in enumerate(labels):
        if i % 7 == 0 or i == count - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                         f'fill="#444">{escape(label[5:])}</text>')
    for n, (name, values) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                     f'<title>{escape(name)}</title></polyline>')
        lx = LEFT + n * 150
        parts.append(f'<rect x="{lx}" y="{HEIGHT - 14}" width="12" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{HEIGHT - 9}" font-size="11" fill="#222">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
