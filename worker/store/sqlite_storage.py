"""A thread's storage report from the SQLite saver's tables (see ``worker.store.storage``).

The tables are LangGraph's SQLite saver's (``checkpoints``, ``writes``), which
``PooledSqliteSaver`` keeps; the report is read on one of its read-only connections
(``PooledSqliteSaver.read``), in one read transaction, so its sections share one snapshot.
"""

from __future__ import annotations

import sqlite3

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


def sqlite_thread_storage(thread_id: str, conn: sqlite3.Connection) -> ThreadStorage:
    """The report of ``thread_id`` read on ``conn`` (blocking: on a connection's thread)."""
    report = ThreadStorage()
    conn.execute("BEGIN")
    try:
        # Row by row: a long thread's checkpoints are never all in memory at once.
        rows = conn.execute(
            "SELECT type, checkpoint, coalesce(length(CAST(metadata AS BLOB)), 0) "
            "FROM checkpoints WHERE thread_id = ?",
            (thread_id,),
        )
        for type_, checkpoint, metadata_bytes in rows:
            _add_checkpoint(report, type_, checkpoint, int(metadata_bytes))
        ((count, size),) = conn.execute(
            "SELECT count(*), coalesce(sum(length(CAST(value AS BLOB))), 0) FROM writes "
            "WHERE thread_id = ?",
            (thread_id,),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    report.write_count, report.write_bytes = int(count), int(size)
    return report
