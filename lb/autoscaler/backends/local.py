"""The local backend: worker processes on this machine, on free loopback ports.

Each worker is ``python -m worker`` with the LB's environment (so ``WORKER_*`` settings such
as the store apply to all of them), listening on a port of its own. A new worker joins the
registry only once it answers its health check. A worker that dies unasked is removed and
replaced (with a growing pause if it keeps dying). :meth:`LocalBackend.close` stops every
worker it started — SIGTERM, which makes a worker drain, then SIGKILL after the grace time —
and on Linux the workers are tied to the LB's life (``PR_SET_PDEATHSIG``), so even an LB killed
with SIGKILL leaves no orphans behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import structlog

from lb.autoscaler.backends.base import BackendError
from lb.fleet.control import Membership
from lb.fleet.registry import Instance

log = structlog.get_logger("lb.autoscaler.local")

CheckNow = Callable[[Instance], Awaitable[object]]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that makes the worker get SIGTERM if the LB dies, even by
    SIGKILL, so a crashed LB leaves no orphans. The libc function is looked up here, before
    any fork: the hook itself only makes one system call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return hook


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalWorker:
    id: str
    port: int
    process: asyncio.subprocess.Process
    stopping: bool = False
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalBackend:
    name = "local"

    def __init__(
        self,
        membership: Membership,
        data_dir: Path,
        *,
        check_now: CheckNow | None = None,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 35.0,
        argv: list[str] | None = None,
    ) -> None:
        self._membership = membership
        self._data_dir = data_dir
        self._check_now = check_now
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._argv = argv or [sys.executable, "-m", "worker"]
        self._workers: dict[str, LocalWorker] = {}
        self._starting = 0
        self._stopping = 0  # workers told to stop that have not exited yet
        self._restarts: set[asyncio.Task[None]] = set()
        self._crash_pause_s = 0.5
        self._session: aiohttp.ClientSession | None = None
        self._preexec = _die_with_parent()

    @property
    def workers(self) -> dict[str, LocalWorker]:
        return dict(self._workers)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def current(self) -> int:
        # A worker being stopped still counts until scale_down returns: the autoscaler
        # subtracts it as draining until then, and must not count its leaving twice.
        return len(self._workers) + self._starting + self._stopping

    def owns(self, instance: Instance) -> bool:
        return instance.id in self._workers

    async def scale_up(self, count: int) -> None:
        results = await asyncio.gather(
            *(self._start_one() for _ in range(count)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise BackendError(f"{len(failures)} of {count} workers failed to start: {failures[0]}")

    async def prefer_victims(self, victims: list[Instance]) -> None:
        """Nothing to steer: this backend stops exactly the victims it is given."""

    async def scale_down(self, victims: list[Instance]) -> None:
        await asyncio.gather(*(self._stop_one(v.id) for v in victims))

    async def close(self) -> None:
        for task in self._restarts:
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        await asyncio.gather(*(self._stop_one(i) for i in list(self._workers)))
        if self._session is not None:
            await self._session.close()

    # -- one worker ----------------------------------------------------------------------------

    def _environment(self, port: int) -> dict[str, str]:
        env = dict(os.environ)
        # This backend registers its workers itself; a worker registering too would do it
        # under another id for the same URL.
        env.pop("WORKER_LB_ADMIN_URL", None)
        env.update(
            WORKER_HOST="127.0.0.1",
            WORKER_PORT=str(port),
            WORKER_ADVERTISE_URL=f"http://127.0.0.1:{port}",
        )
        env.setdefault("WORKER_STORE", f"sqlite:///{(self._data_dir / 'worker.sqlite').resolve()}")
        return env

    async def _start_one(self) -> LocalWorker:
        self._starting += 1
        try:
            port = free_port()
            self._data_dir.mkdir(parents=True, exist_ok=True)
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._argv,
                    env=self._environment(port),
                    stdin=asyncio.subprocess.DEVNULL,
                    preexec_fn=self._preexec,  # one prctl call: safe between fork and exec
                )
            except OSError as exc:
                raise BackendError(f"cannot start {self._argv}: {exc}") from exc
            worker = LocalWorker(id=f"local-{port}", port=port, process=process)
            try:
                await self._wait_healthy(worker)
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise
            self._workers[worker.id] = worker
            worker.watcher = asyncio.create_task(self._watch(worker), name="lb-local-watch")
            instance, _ = self._membership.register(
                worker.url, worker.id, None, None, local_only=True
            )
            if self._check_now is not None:
                await self._check_now(instance)
            log.info("local_worker_started", instance_id=worker.id, pid=process.pid)
            return worker
        finally:
            self._starting -= 1

    async def _wait_healthy(self, worker: LocalWorker) -> None:
        assert self._session is not None, "start() first"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        while loop.time() < deadline:
            if worker.process.returncode is not None:
                raise BackendError(
                    f"worker on port {worker.port} exited with {worker.process.returncode}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.get(
                    worker.url + "/health", timeout=aiohttp.ClientTimeout(total=1.0)
                ) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise BackendError(f"worker on port {worker.port} not healthy in {self._start_timeout_s} s")

    async def _watch(self, worker: LocalWorker) -> None:
        code = await worker.process.wait()
        if worker.stopping:
            return
        # Died unasked: forget it and start a replacement.
        log.warning("local_worker_died", instance_id=worker.id, returncode=code)
        self._workers.pop(worker.id, None)
        self._membership.forget(worker.id)
        task = asyncio.create_task(self._replace(), name="lb-local-replace")
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _replace(self) -> None:
        await asyncio.sleep(self._crash_pause_s)
        self._crash_pause_s = min(self._crash_pause_s * 2, 30.0)
        try:
            await self._start_one()
            self._crash_pause_s = 0.5
        except BackendError as exc:
            log.error("local_worker_restart_failed", error=str(exc))

    async def _stop_one(self, instance_id: str) -> None:
        worker = self._workers.pop(instance_id, None)
        if worker is None:
            return
        worker.stopping = True
        process = worker.process
        self._stopping += 1
        try:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), self._stop_timeout_s)
                except TimeoutError:
                    log.warning("local_worker_killed", instance_id=instance_id)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            if worker.watcher is not None:
                await worker.watcher
        finally:
            self._stopping -= 1
        self._membership.forget(instance_id)
        log.info("local_worker_stopped", instance_id=instance_id, returncode=process.returncode)
