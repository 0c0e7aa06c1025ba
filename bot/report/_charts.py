"""Charts as inline SVG, drawn by pygal: no script, no font or file fetched, prints as drawn.

pygal writes SVG itself (no browser, no image library); its interactive tooltips need a
script, which is left out (``js=[]``, and the configuration script pygal adds anyway is
removed): the charts are complete without it, and every chart's numbers are in a table
beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

#: Colour-blind safe (Okabe–Ito), dark enough on white and in greyscale print.
_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222222",
    foreground_strong="#111111",
    foreground_subtle="#bbbbbb",
    colors=("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"),
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    value_font_size=12,
)
_COMMON: dict[str, Any] = {
    "style": _STYLE,
    "js": [],
    "disable_xml_declaration": True,
    "width": 640,
    "height": 280,
    "legend_at_bottom": True,
    "show_minor_x_labels": False,
    "x_labels_major_count": 6,
    "truncate_label": -1,
    "margin": 12,
    "margin_right": 36,
}

Series = tuple[str, Sequence[float | None], dict[str, Any]]


def line(label: str, x_labels: Sequence[str], series: Sequence[Series], *,
         y_range: tuple[int, int]) -> Markup:
    """A line chart, one line per series (None: no value at that point)."""
    chart = pygal.Line(range=y_range, dots_size=3, allow_interruptions=True,
                       y_labels=list(range(y_range[0], y_range[1] + 1)), **_COMMON)
    return _render(chart, label, x_labels, series)


def bars(label: str, x_labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """A bar chart, one bar per series at each label."""
    highest = max((v or 0 for _, values, _ in series for v in values), default=0)
    chart = pygal.Bar(range=(0, max(1, int(highest))), **_COMMON)
    return _render(chart, label, x_labels, series)


def _render(chart: Any, label: str, x_labels: Sequence[str],
            series: Sequence[Series]) -> Markup:
    chart.x_labels = list(x_labels)
    for name, values, options in series:
        chart.add(name, list(values), **options)

    def plain(root: Any) -> Any:
        """No script (pygal adds its tooltips' configuration even with ``js=[]``), no
        comment; one accessible name for the picture (the table beside it has the numbers)."""
        for parent in list(root.iter()):
            for child in list(parent):
                if not isinstance(child.tag, str) or child.tag.rpartition("}")[2] == "script":
                    parent.remove(child)
        root.set("role", "img")
        root.set("aria-label", label)
        return root

    chart.add_xml_filter(plain)
    return Markup(chart.render(is_unicode=True))  # pygal escapes every text it writes
