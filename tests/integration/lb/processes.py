"""``python -m lb`` as a child process of a test, on free ports and a data dir of its own."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support import eventually, free_port


@dataclass
class LBProcess:
    process: asyncio.subprocess.Process
    port: int
    admin_port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def admin(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    async def wait_until(self, path: str = "/ready", timeout_s: float = 20) -> None:
        """Poll an admin path until it answers 200 (``/health``: up; ``/ready``: routable)."""
        async with aiohttp.ClientSession() as session:

            async def answers() -> bool:
                try:
                    async with session.get(self.admin(path)) as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(answers, timeout_s=timeout_s)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def start_lb_process(
    data_dir: Path, *, stderr: int | None = None, **settings: str
) -> LBProcess:
    """Start ``python -m lb`` with ``LB_<NAME>`` settings from the keyword arguments."""
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "LB_PORT": str(port),
        "LB_ADMIN_PORT": str(admin_port),
        "LB_DATA_DIR": str(data_dir),
        "LB_LOG_LEVEL": "warning",
        **{f"LB_{name.upper()}": value for name, value in settings.items()},
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lb", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr
    )
    return LBProcess(process, port, admin_port)
