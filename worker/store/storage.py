"""What a thread's checkpoints occupy, as stored (``GET /threads/{id}/storage``).

The report has the official server's three sections; what each counts depends on how the
store's checkpointer lays the data out:

- Postgres (``AsyncPostgresSaver``): ``checkpoints`` are the rows of ``checkpoints`` (the
  checkpoint JSONB, with the channel values small enough to be kept inline, plus its
  metadata); ``channel_values`` the rows of ``checkpoint_blobs``, one per channel version;
  ``pending_writes`` the rows of ``checkpoint_writes``. Bytes are ``pg_column_size``: what
  each value takes on disk, after Postgres' own compression.
- SQLite (LangGraph's SQLite saver's tables, which ``PooledSqliteSaver`` keeps): there is
  no blob table; each checkpoint row carries every channel's value inside its serialized
  checkpoint, again in every checkpoint. So
  ``channel_values.by_channel`` counts, per channel, the copies of its value inside the rows
  (``versions``: how many rows carry one) and their encoded bytes, and ``checkpoints.bytes``
  is the rest of the rows (the checkpoint without its values, plus the metadata). The
  sections still add up to the bytes of the rows; ``pending_writes`` are the ``writes`` rows.
  Bytes are the lengths of the stored blobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ChannelBytes:
    """One channel's stored values: how many (``versions``) and their size."""

    versions: int = 0
    bytes: int = 0


@dataclass(slots=True)
class ThreadStorage:
    """The three sections of the report, filled in by a store (see the module docstring)."""

    checkpoint_count: int = 0
    checkpoint_bytes: int = 0
    by_channel: dict[str, ChannelBytes] = field(default_factory=dict)
    write_count: int = 0
    write_bytes: int = 0

    def add_channel(self, channel: str, versions: int, size: int) -> None:
        entry = self.by_channel.setdefault(channel, ChannelBytes())
        entry.versions += versions
        entry.bytes += size

    @property
    def channel_bytes(self) -> int:
        return sum(entry.bytes for entry in self.by_channel.values())

    @property
    def total_bytes(self) -> int:
        return self.checkpoint_bytes + self.channel_bytes + self.write_bytes
