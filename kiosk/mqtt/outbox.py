"""The kiosk side of the outbox: what the publisher reads and marks.

Uses its own sqlite3 connection to the ledger file (WAL lets it read while the till
posts), so the publisher thread never shares the ledger's connection or its models.
Outbox rows are not posted rows: their delivery state may change, their payload not.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> str:
    return datetime.now(UTC).strftime(TS_FORMAT)


@dataclass(frozen=True)
class JournalRow:
    seq: int
    part: int
    payload: bytes


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    kind: str
    payload: bytes
    state: str
    attempts: int
    last_error: str | None


class OutboxStore:
    def __init__(self, path: Path):
        self.conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self.conn.execute("PRAGMA busy_timeout = 30000")
        # Delivery marks need no fsync: if a power cut loses one, the event goes out
        # again and the controller drops the duplicate.
        self.conn.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        self.conn.close()

    def pending_after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.conn.execute(
            "SELECT seq, payload FROM outbox WHERE state = 'pending' AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [(s, p.encode()) for s, p in rows]

    def _write(self, sql: str, params: Iterable[tuple]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(sql, params)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def mark_sent(self, seqs: list[int]) -> None:
        now = _now()
        self._write(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE seq = ? AND state = 'pending'",
            [(now, seq) for seq in seqs],
        )

    def mark_dead(self, seq: int, error: str) -> None:
        self._write(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ? "
            "WHERE seq = ?",
            [(error[:500], seq)],
        )

    def note_error(self, seq: int, error: str) -> None:
        self._write(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
            [(error[:500], seq)],
        )

    def resend_from(self, seq: int) -> int:
        """A resync request: events from `seq` on go out again, with their journals (a
        controller restored from a backup lost both)."""
        cursor = self.conn.execute(
            "UPDATE outbox SET state = 'pending' WHERE seq >= ? AND state = 'sent'", (seq,)
        )
        with contextlib.suppress(sqlite3.OperationalError):  # a ledger before schema 6
            self.conn.execute(
                "UPDATE journal_outbox SET state = 'pending' WHERE seq >= ? AND state = 'sent'",
                (seq,),
            )
        return cursor.rowcount

    # ---------------------------------------------------------------- the journal
    # (kiosk.ledger.journal): the same delivery states, keyed by (seq, part).

    def journal_pending_after(self, key: tuple[int, int], limit: int) -> list[JournalRow]:
        try:
            rows = self.conn.execute(
                "SELECT seq, part, payload FROM journal_outbox WHERE state = 'pending' "
                "AND (seq, part) > (?, ?) ORDER BY seq, part LIMIT ?",
                (*key, limit),
            )
            return [JournalRow(s, p, payload.encode()) for s, p, payload in rows]
        except sqlite3.OperationalError:  # a ledger before schema 6 has no journal
            return []

    def mark_journal_sent(self, keys: list[tuple[int, int]]) -> None:
        now = _now()
        self._write(
            "UPDATE journal_outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE seq = ? AND part = ? AND state = 'pending'",
            [(now, seq, part) for seq, part in keys],
        )

    def mark_journal_dead(self, key: tuple[int, int], error: str) -> None:
        self._write(
            "UPDATE journal_outbox SET state = 'dead', attempts = attempts + 1, "
            "last_error = ? WHERE seq = ? AND part = ?",
            [(error[:500], *key)],
        )

    def note_journal_error(self, key: tuple[int, int], error: str) -> None:
        self._write(
            "UPDATE journal_outbox SET attempts = attempts + 1, last_error = ? "
            "WHERE seq = ? AND part = ?",
            [(error[:500], *key)],
        )

    def journal_depth(self) -> int:
        try:
            query = "SELECT COUNT(*) FROM journal_outbox WHERE state = 'pending'"
            return self.conn.execute(query).fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    def retry_dead(self) -> int:
        cursor = self.conn.execute(
            "UPDATE outbox SET state = 'pending', last_error = NULL WHERE state = 'dead'"
        )
        with contextlib.suppress(sqlite3.OperationalError):  # a ledger before schema 6
            self.conn.execute(
                "UPDATE journal_outbox SET state = 'pending', last_error = NULL "
                "WHERE state = 'dead'"
            )
        return cursor.rowcount

    def depth(self) -> int:
        query = "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
        return self.conn.execute(query).fetchone()[0]

    def last_seq(self) -> int | None:
        return self.conn.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]

    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))

    def rows(self, state: str | None = None, limit: int = 50) -> list[OutboxRow]:
        query = "SELECT seq, kind, payload, state, attempts, last_error FROM outbox"
        params: tuple = ()
        if state:
            query += " WHERE state = ?"
            params = (state,)
        query += " ORDER BY seq DESC LIMIT ?"
        return [
            OutboxRow(s, k, p.encode(), st, a, e)
            for s, k, p, st, a, e in self.conn.execute(query, (*params, limit))
        ]
