"""The registry's state file: registered instances survive an LB restart.

Written atomically (temporary file in the same directory, fsync, rename, fsync of the
directory), so a crash leaves either the old file or the new one, never half of one. Writes
happen off the event loop and are coalesced: a burst of registrations is one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger("lb.fleet.statefile")

FORMAT_VERSION = 1
_FIELDS = {"id": str, "url": str, "max_capacity": int, "weight": int}


def load_records(path: Path) -> list[dict[str, Any]]:
    """The records in ``path``; none when it does not exist. A corrupt file is moved aside
    (``.corrupt``) and reported, so it is neither trusted nor silently overwritten."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        data = orjson.loads(raw)
        records = data["instances"]
        for record in records:
            for name, kind in _FIELDS.items():
                if not isinstance(record[name], kind):
                    raise TypeError(name)
            record.setdefault("draining", False)
            record.setdefault("pending_removal", False)
        return list(records)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        aside = path.with_suffix(path.suffix + ".corrupt")
        os.replace(path, aside)
        log.error("state_file_corrupt", path=str(path), moved_to=str(aside), error=repr(exc))
        return []


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps(
        {"version": FORMAT_VERSION, "instances": records}, option=orjson.OPT_INDENT_2
    )
    fd, tmp = tempfile.mkstemp(prefix=".registry-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class StateFileWriter:
    """Writes the current records whenever :meth:`mark_dirty` was called since the last write."""

    def __init__(self, path: Path, records: Callable[[], list[dict[str, Any]]]) -> None:
        self.path = path
        self._records = records
        self._dirty = asyncio.Event()
        self._writing: asyncio.Future[None] | None = None

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def run(self) -> None:
        try:
            while True:
                await self._dirty.wait()
                await self.flush()
        finally:
            # Cancelling the wait does not stop a write already in its thread: let it land
            # first, or it could replace the final write below with older records.
            if self._writing is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._writing)
            if self._dirty.is_set():
                # Shutting down with changes unwritten: write them before we go.
                write_records(self.path, self._records())

    async def flush(self) -> None:
        self._dirty.clear()
        records = self._records()  # taken on the loop: a consistent view
        self._writing = asyncio.create_task(
            asyncio.to_thread(write_records, self.path, records), name="lb-state-file-write"
        )
        try:
            await asyncio.shield(self._writing)
        except OSError as exc:
            log.error("state_file_write_failed", path=str(self.path), error=repr(exc))
        finally:
            if self._writing.done():
                self._writing = None
