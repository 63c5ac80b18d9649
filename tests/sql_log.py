"""A store's SQL statements as its ``sql_trace`` hears them, grouped and counted for tests."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

_TABLE = re.compile(r"^(INSERT OR \w+ INTO|INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)", re.IGNORECASE)
# A SELECT's table: the last FROM of a table (not of a function such as jsonb_each_text()).
_FROM = re.compile(r"\bFROM\s+(\w+)\b(?!\s*\()", re.IGNORECASE)
_WRITTEN = re.compile(r"(?:INSERT INTO|(?<!DO )UPDATE|DELETE FROM)\s+(\w+)", re.IGNORECASE)
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def shape(sql: str) -> str:
    """A statement as its verb and table: ``INSERT gf_runs``, ``SELECT checkpoints``;
    one of ``WITH`` clauses as the tables it writes: ``WITH gf_threads+gf_runs``."""
    text = " ".join(sql.split())
    if text.upper().startswith("WITH "):
        return "WITH " + "+".join(dict.fromkeys(_WRITTEN.findall(text)))
    if text.upper().startswith("SELECT "):
        tables = _FROM.findall(text)
        return f"SELECT {tables[-1]}" if tables else "SELECT"
    found = _TABLE.match(text)
    if found is None:
        return text.split(" ")[0].upper()
    verb = found.group(1).split(" ")[0].upper()
    return f"{verb} {found.group(2)}"


@dataclass
class SqlLog:
    """Every statement heard, with the thread it ran on (a SQLite connection's own)."""

    entries: list[tuple[int, str]] = field(default_factory=list)

    def __call__(self, sql: str) -> None:
        self.entries.append((threading.get_ident(), " ".join(sql.split())))

    def clear(self) -> None:
        self.entries.clear()

    def statements(self) -> list[str]:
        """Statements other than transaction control."""
        return [sql for _, sql in self.entries if not sql.upper().startswith(_CONTROL)]

    def shapes(self) -> Counter[str]:
        return Counter(shape(sql) for sql in self.statements())

    def transactions(self) -> list[list[str]]:
        """Each explicit transaction's statements, per connection (``BEGIN`` to its end)."""
        open_: dict[int, list[str]] = {}
        done: list[list[str]] = []
        for thread, sql in self.entries:
            upper = sql.upper()
            if upper.startswith("BEGIN"):
                open_[thread] = []
            elif upper.startswith(("COMMIT", "ROLLBACK")) and not upper.startswith("ROLLBACK TO"):
                if thread in open_:
                    done.append(open_.pop(thread))
            elif thread in open_ and not upper.startswith(_CONTROL):
                open_[thread].append(sql)
        return done
