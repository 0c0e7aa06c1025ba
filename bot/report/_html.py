"""The report as one self-contained HTML file: inline CSS and SVG, no script, no request.

Rendered by Jinja2 with autoescaping on for every value, so nothing a client typed (nor
any text of a script or the ledger) can become markup; the only markup inserted as it is
are the charts, which pygal writes and escapes itself.
"""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from bot.report._progress import ProgressReport

_TEMPLATES = Path(__file__).with_name("templates")


@functools.cache
def _template() -> Template:
    environment = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2")


def render_report(report: ProgressReport) -> str:
    """The report as an HTML document."""
    return _template().render(report=report)
