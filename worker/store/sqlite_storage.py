"""A thread's storage report from ``AsyncSqliteSaver``'s tables (see ``worker.store.storage``).

Read on the saver's own connection (under its lock): for a store in memory, the records and
the checkpoints are two databases.
"""

from __future__ import annotations

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from worker.store.msgpack_spans import MsgpackError, map_value_spans
from worker.store.storage import ThreadStorage

# The serializer's type tag of a checkpoint whose bytes are plain MessagePack. (Lengths are
# of the values as BLOBs: length() of a TEXT value would count characters.)
_MSGPACK = "msgpack"


def _add_checkpoint(
    report: ThreadStorage, type_: str | None, checkpoint: bytes | str | None, metadata_bytes: int
) -> None:
    """Count one checkpoint row: its channel values per channel, the rest as the checkpoint."""
    blob = checkpoint.encode() if isinstance(checkpoint, str) else checkpoint or b""
    spans: dict[str, int] | None = None
    if type_ == _MSGPACK and blob:
        try:
            spans = map_value_spans(blob, "channel_values")
        except MsgpackError:
            spans = None  # not what this saver writes: count the row as a whole
    for channel, size in (spans or {}).items():
        report.add_channel(channel, 1, size)
    report.checkpoint_count += 1
    report.checkpoint_bytes += len(blob) - sum((spans or {}).values()) + metadata_bytes


async def sqlite_thread_storage(saver: AsyncSqliteSaver, thread_id: str) -> ThreadStorage:
    report = ThreadStorage()
    async with saver.lock:
        # Row by row: a long thread's checkpoints are never all in memory at once.
        async with saver.conn.execute(
            "SELECT type, checkpoint, coalesce(length(CAST(metadata AS BLOB)), 0) "
            "FROM checkpoints WHERE thread_id = ?",
            (thread_id,),
        ) as cur:
            async for type_, checkpoint, metadata_bytes in cur:
                _add_checkpoint(report, type_, checkpoint, int(metadata_bytes))
        async with saver.conn.execute(
            "SELECT count(*), coalesce(sum(length(CAST(value AS BLOB))), 0) FROM writes "
            "WHERE thread_id = ?",
            (thread_id,),
        ) as cur:
            row = await cur.fetchone()
    if row is not None:
        report.write_count, report.write_bytes = int(row[0]), int(row[1])
    return report
