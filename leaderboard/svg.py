"""Line plots as inline SVG, written in Python: the site's plots need no JavaScript library and no network.

Every text is escaped; colours come from a fixed palette in series order.
"""

from __future__ import annotations

import html
import math

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
DASHES = ("", ' stroke-dasharray="6 3"', ' stroke-dasharray="2 2"')
WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 250, 28, 44

# One series: its name and its points (x, y, half-width of y's interval or 0).
Series = tuple[str, list[tuple[float, float, float]]]


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(math.ceil((high - first) / step) + 1)]


def plot(series: list[Series], title: str, xlabel: str, ylabel: str, log_x: bool = False) -> str:
    """An SVG line plot of ``series`` with error bars, axes, ticks and a legend."""
    points = [p for _, pts in series for p in pts]
    if not points:
        return ""

    def fx(x: float) -> float:
        return math.log10(max(x, 1e-9)) if log_x else x

    xs, ys = [fx(p[0]) for p in points], [y for _, y, h in points for y in (y - h, y + h)]
    xt, yt = ticks(min(xs), max(xs)), ticks(min(ys), max(ys))
    if len({*xs}) == 1:
        xt = [xs[0] - 1, xs[0], xs[0] + 1]
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    height = max(HEIGHT, TOP + 16 * len(series) + BOTTOM)  # room for the legend
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (fx(x) - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    e = html.escape
    out = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="{e(title)}">',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{e(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for t in xt:
        x = LEFT + (t - x0) / (x1 - x0) * plot_w
        shown = f"{10**t:g}" if log_x else f"{t:g}"
        out.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 4}" stroke="#999"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" font-size="11" text-anchor="middle">{shown}</text>')
    for t in yt:
        y = py(t)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>')
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{height - 6}" font-size="12" text-anchor="middle">{e(xlabel)}</text>'
        f'<text x="14" y="{TOP + plot_h / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{e(ylabel)}</text>'
    )
    for i, (name, pts) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        dash = DASHES[i // len(PALETTE) % len(DASHES)]  # past the palette, lines differ by their dashes too
        pts = sorted(pts)
        if len(pts) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
        for x, y, h in pts:
            if h:
                out.append(
                    f'<line x1="{px(x):.1f}" y1="{py(y - h):.1f}" x2="{px(x):.1f}" y2="{py(y + h):.1f}" '
                    f'stroke="{colour}"/>'
                )
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}">'
                f"<title>{e(name)}: {x:g}, {y:.2f}{f' ± {h:.2f}' if h else ''}</title></circle>"
            )
        ly = TOP + 12 + 16 * i
        out.append(
            f'<line x1="{WIDTH - RIGHT + 6}" y1="{ly - 3}" x2="{WIDTH - RIGHT + 20}" y2="{ly - 3}" stroke="{colour}" '
            f'stroke-width="2.5"{dash}/>'
            f'<text x="{WIDTH - RIGHT + 24}" y="{ly + 1}" font-size="11">{e(_short(name))}<title>{e(name)}</title></text>'
        )
    out.append("</svg>")
    return "".join(out)


def _short(name: str, most: int = 38) -> str:
    return name if len(name) <= most else name[: most - 1] + "…"
