"""The progress report in a real browser: headless Chromium (Debian's ``chromium``).

One Chromium run: the report as ``rehearse report --out`` writes it draws every chart, makes
no request but for itself, logs no error, and prints to PDF; a screenshot and the PDF are
kept in the test's temporary directory. A control page in the same run proves that the
harness does see requests and console errors. CI (``CI=true``) installs Chromium with apt-get
when it is missing; elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.cli import main as rehearse
from bot.engine import Text
from bot.report import SHARE_ITEMS
from bot.service import Rehearsal
from bot.store import SqliteStore
from tests.conftest import Clock
from tests.support.chromium import Chromium, find_chromium
from tests.support.engine_driver import CRISIS, ServiceClient
from tests.support.practice import consent_sharing, practise, share

IN_CI = os.environ.get("CI") == "true"

#: For each chart: is there an SVG, how wide is it drawn, how many marks (dots, lines, bars)
#: are in its plot, and how many rows has the table beside it.
CHARTS = """[...document.querySelectorAll('figure[data-chart]')].map(f => {
  const svg = f.querySelector('svg');
  return {key: f.dataset.chart, svg: !!svg,
          width: svg ? svg.getBoundingClientRect().width : 0,
          marks: svg ? svg.querySelectorAll('.plot .dots, .plot path.line, .plot rect.rect')
                       .length : 0,
          rows: f.querySelectorAll('tbody tr').length};
})"""


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if IN_CI:
            pytest.fail("Chromium could not be installed with apt-get")
        pytest.skip("Chromium is not installed here (apt-get install chromium); CI installs it")
    return found


def write_report(tmp_path: Path, loaded: Loaded) -> Path:
    """Three weeks of a client's practice, mostly shared, one crisis; the report written by
    ``rehearse report --out``."""
    db = tmp_path / "rehearse.db"
    clock = Clock()

    async def practised() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, clock)
            ada = ServiceClient(service, "tg:2001")
            await consent_sharing(ada)
            for day in range(21):
                session = await practise(ada, before=3 + day % 4, after=1 + day % 3,
                                         expected=6 - day // 7, actual=4 - day // 7,
                                         smaller=day % 2, level_up=True,
                                         helped=("It helped", "A little")[day % 2])
                items = SHARE_ITEMS if day % 5 else ("exercise", "ratings")
                await share(store, ada.client_id, session, items, clock.advance(minutes=30))
                if day == 10:
                    await ada.send(Text(text=CRISIS))
                    await ada.press("sf")
                clock.advance(days=1)

    asyncio.run(practised())
    out = tmp_path / "report.html"
    assert rehearse(["report", "tg:2001", "--db", str(db), "--out", str(out)]) == 0
    return out


def test_the_report_draws_every_chart_offline_without_errors(
    chromium: str, tmp_path: Path, loaded: Loaded
) -> None:
    report = write_report(tmp_path, loaded)
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><meta charset="utf-8"><p>control</p>'
                       '<img src="http://rehearse.invalid/x.png">'
                       '<script>console.error("control error")</script>', encoding="utf-8")

    async def look() -> tuple[bytes, bytes]:
        async with Chromium.start(chromium, tmp_path / "profile") as browser:
            page = await browser.open(report.as_uri())
            assert page.requests == [page.url]  # only the file itself: nothing from a network
            assert page.errors == [], page.errors
            assert page.console == [] and page.exceptions == []
            charts = await browser.evaluate(CHARTS)
            assert [c["key"] for c in charts] == ["distress", "difficulty", "level", "weekly",
                                                   "helped"]
            for chart in charts:
                assert chart["svg"] and chart["width"] > 300, chart
                assert chart["marks"] > 0 and chart["rows"] > 0, chart
            assert await browser.evaluate("document.querySelectorAll('script').length") == 0
            printed, shot = await browser.pdf(), await browser.screenshot()

            seen = await browser.open(control.as_uri())  # the harness sees what a page does
            assert any(url.startswith("http://rehearse.invalid/") for url in seen.requests)
            assert "control error" in " ".join(seen.errors)
        return printed, shot

    printed, shot = asyncio.run(look())
    assert printed.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", printed)) >= 2
    assert shot.startswith(b"\x89PNG")
    (tmp_path / "report.pdf").write_bytes(printed)
    (tmp_path / "report.png").write_bytes(shot)
