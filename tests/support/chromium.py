"""Headless Chromium driven over the DevTools protocol, to look at a page as a person would.

Debian's ``chromium`` runs with ``--remote-debugging-port=0``; aiohttp's WebSocket client
speaks the protocol. A :class:`Page` records every request the page makes (not Chromium's own
background traffic, which belongs to no page), every console message and log entry, and
can read the DOM, take a screenshot and print to PDF::

    async with Chromium.start(executable, tmp_path / "profile") as browser:
        page = await browser.open((tmp_path / "report.html").as_uri())
        assert page.requests == [page.url]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import debian

#: How long Chromium may take to start, and a page to load.
TIMEOUT = 30.0
#: The discard port: nothing listens on it here, so every request through it fails at once.
CLOSED_PORT = 9


def find_chromium() -> str | None:
    """The Chromium executable; in CI, installed first when missing (:mod:`.debian`)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    debian.wait_for("chromium")
    return shutil.which("chromium")


@dataclass
class Page:
    """What one page did while it loaded.

    Attributes:
        url: The page's address.
        requests: Every URL the page requested, its own first.
        console: Console messages as ``(type, text)``.
        log: Browser log entries (failed loads, policy violations) as ``(level, text)``.
        exceptions: Uncaught script errors.
    """

    url: str
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Console errors, error log entries and script errors."""
        return ([text for kind, text in self.console if kind in ("error", "assert")]
                + [text for level, text in self.log if level == "error"] + self.exceptions)


class Chromium:
    """One headless Chromium with one tab, driven over the DevTools protocol."""

    def __init__(self, process: asyncio.subprocess.Process, socket: aiohttp.ClientWebSocketResponse,
                 session: aiohttp.ClientSession) -> None:
        self._process = process
        self._socket = socket
        self._http = session
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self._tab: str | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, executable: str, profile: Path) -> AsyncIterator[Chromium]:
        """Start Chromium with a fresh profile in `profile`; stop it afterwards."""
        process = await asyncio.create_subprocess_exec(
            executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update",
            # Whatever is requested goes nowhere: to a closed port on this machine, with no
            # name ever looked up (Chromium's own background requests included).
            f"--proxy-server=http://127.0.0.1:{CLOSED_PORT}", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        drain: asyncio.Task[None] | None = None
        try:
            address = await asyncio.wait_for(_devtools_address(process), TIMEOUT)
            drain = asyncio.create_task(_drain(process))  # a full pipe would stall Chromium
            session = aiohttp.ClientSession()
            try:
                socket = await session.ws_connect(address, max_msg_size=0)
                browser = cls(process, socket, session)
                try:
                    await browser._attach()
                    yield browser
                finally:
                    await browser._close()
            finally:
                await session.close()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
            if drain is not None:
                await drain

    async def open(self, url: str, *, width: int = 1200) -> Page:
        """Load a page at `width` pixels and wait until it has settled."""
        page = Page(url)
        await self.call("Emulation.setDeviceMetricsOverride",
                        width=width, height=900, deviceScaleFactor=1, mobile=False)
        while not self._events.empty():
            self._events.get_nowait()
        await self.call("Page.navigate", url=page.url)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        loaded = False
        while True:
            try:
                event = await asyncio.wait_for(self._events.get(), 1.0 if loaded else
                                               max(0.1, deadline - loop.time()))
            except TimeoutError:
                if loaded:
                    return page  # a quiet second after the load event: nothing else comes
                raise
            method, params = event["method"], event.get("params", {})
            if method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", "")))
                                for a in params.get("args", []))
                page.console.append((params["type"], text))
            elif method == "Log.entryAdded":
                entry = params["entry"]
                page.log.append((entry["level"], entry.get("text", "")))
            elif method == "Runtime.exceptionThrown":
                page.exceptions.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Page.loadEventFired":
                loaded = True

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (run by the test, not the
        page: the page itself needs and has no script)."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self) -> bytes:
        """The whole page as a PNG."""
        height = int(await self.evaluate("document.documentElement.scrollHeight"))
        width = int(await self.evaluate("document.documentElement.scrollWidth"))
        await self.call("Emulation.setDeviceMetricsOverride",
                        width=width, height=height, deviceScaleFactor=1, mobile=False)
        shot = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])

    async def pdf(self) -> bytes:
        """The page printed as the print dialog would (its print styles and page size)."""
        printed = await self.call("Page.printToPDF", preferCSSPageSize=True,
                                  printBackground=True)
        return base64.b64decode(printed["data"])

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one protocol command to the tab and return its result."""
        return await self._send(method, params, session=self._tab)

    # -- plumbing ---------------------------------------------------------------------------
    async def _attach(self) -> None:
        targets = await self._send("Target.getTargets", {})
        [tab] = [t for t in targets["targetInfos"] if t["type"] == "page"]
        attached = await self._send("Target.attachToTarget",
                                    {"targetId": tab["targetId"], "flatten": True})
        self._tab = attached["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            await self.call(f"{domain}.enable")

    async def _send(self, method: str, params: dict[str, Any],
                    session: str | None = None) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        await self._socket.send_str(json.dumps(message))
        reply = await asyncio.wait_for(answer, TIMEOUT)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def _read(self) -> None:
        async for message in self._socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                waiting = self._waiting.pop(data["id"], None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(data)
            elif data.get("sessionId") == self._tab:
                self._events.put_nowait(data)

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._send("Browser.close", {}), 5)
        await self._socket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def _devtools_address(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    while True:
        line = (await process.stderr.readline()).decode(errors="replace")
        if not line:
            raise RuntimeError("Chromium exited before it listened for DevTools")
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.read(65536):
        pass
