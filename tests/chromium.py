"""A headless Chromium driven over the Chrome DevTools Protocol with aiohttp (no playwright,
no browser download: Debian's ``chromium`` package). Just what the page tests need: navigate,
evaluate, type, press keys, screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import eventually, free_port

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def chromium_binary() -> str:
    """The browser, or a skip (a failure under ``REQUIRE_SERVICES=1``: CI installs it)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail("chromium is not installed and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)")


class Page:
    """One tab over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = message.json()
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._pending.values():
            future.set_exception(ConnectionError("the DevTools socket closed"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        reply = await asyncio.wait_for(future, timeout=20)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await eventually(
            lambda: self.evaluate(
                f"document.readyState === 'complete' && location.href === {url!r}"
            ),
            timeout_s=15,
        )

    async def wait_for(self, expression: str, timeout_s: float = 15) -> None:
        async def holds() -> bool:
            try:
                return bool(await self.evaluate(expression))
            except RuntimeError:  # mid-navigation (no body yet): not yet
                return False

        await eventually(holds, timeout_s=timeout_s, interval_s=0.05)

    async def type_text(self, text: str) -> None:
        await self.send("Input.insertText", text=text)

    async def press_enter(self) -> None:
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text="\r", **key)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **key)

    async def resize(self, width: int, height: int, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    async def screenshot(self, name: str) -> Path:
        """A PNG of the whole page under ``test-artifacts/`` (gitignored)."""
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def chromium(user_data_dir: Path) -> AsyncIterator[Page]:
    """A fresh headless Chromium with one blank tab; killed with its helpers on exit."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        chromium_binary(),
        *FLAGS,
        f"--user-data-dir={user_data_dir}",
        f"--remote-debugging-port={port}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its zygote and renderers share its group: one kill ends all
    )
    try:
        async with aiohttp.ClientSession() as http:
            targets: list[dict[str, Any]] = []

            async def listed() -> bool:
                nonlocal targets
                try:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                        targets = [t for t in await response.json() if t["type"] == "page"]
                except aiohttp.ClientError:
                    return False
                return bool(targets)

            await eventually(listed, timeout_s=30, interval_s=0.1)
            ws = await http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            try:
                await page.send("Page.enable")
                yield page
            finally:
                await page.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
