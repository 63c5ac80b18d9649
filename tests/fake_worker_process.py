"""A fake worker as a process of its own, for the local scaling backend's tests.

Listens on ``WORKER_PORT`` like ``python -m worker`` does. On SIGTERM it drains as a worker
does: ``/health`` answers 503, requests in progress finish, then it exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal

from tests.fakes import FakeWorker


async def main() -> None:
    port = int(os.environ["WORKER_PORT"])
    fake = FakeWorker(f"w{port}", max_capacity=int(os.environ.get("FAKE_CAPACITY", "2")))
    await fake.start(port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    fake.health_status = 503
    for _ in range(200):
        if fake.active == 0:
            break
        await asyncio.sleep(0.05)
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
