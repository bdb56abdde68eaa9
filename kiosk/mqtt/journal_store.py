"""The controller's side of the transaction journal: each (device, seq, part) once.

Applied inside the controller's batch transaction, beside the stock events: a
redelivered or resent part changes nothing, the same part with other content is a
conflict the caller dead-letters (like a stock event's).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import NamedTuple

from kiosk.mqtt.journal_contract import Journal
from kiosk.mqtt.store import JournalLine, JournalPart, JournalTxn, insert_rows
from kiosk.mqtt.topics import ts_text


class JournalOutcome(NamedTuple):
    fresh: list[Journal]
    conflicts: list[Journal]


def _text(value) -> str:
    return format(value, "f")


def _split(journals: list[Journal]) -> tuple[list[Journal], list[Journal]]:
    """(parts never applied, parts applied before with other content)."""
    by_key: dict[tuple[str, int, int], Journal] = {}
    conflicts = []
    for journal in journals:
        first = by_key.setdefault(journal.key, journal)
        if first is not journal and first.digest != journal.digest:
            conflicts.append(journal)
    by_device: dict[str, list[Journal]] = defaultdict(list)
    for journal in by_key.values():
        by_device[journal.device].append(journal)
    fresh = []
    for device, items in by_device.items():
        seqs = sorted({j.seq for j in items})
        seen: dict[tuple[int, int], str] = {}
        for start in range(0, len(seqs), 500):
            rows = JournalPart.select(JournalPart.seq, JournalPart.part, JournalPart.digest).where(
                (JournalPart.device == device) & JournalPart.seq.in_(seqs[start : start + 500])
            )
            seen.update({(seq, part): digest for seq, part, digest in rows.tuples()})
        for journal in items:
            digest = seen.get((journal.seq, journal.part))
            if digest is None:
                fresh.append(journal)
            elif digest != journal.digest:
                conflicts.append(journal)
    return fresh, conflicts


def apply_journals(journals: list[Journal], now: datetime) -> JournalOutcome:
    """Store the parts never seen, inside the caller's transaction."""
    fresh, conflicts = _split(journals)
    if not fresh:
        return JournalOutcome([], conflicts)
    stamp = ts_text(now)
    insert_rows(
        JournalPart,
        [{"device": j.device, "seq": j.seq, "part": j.part, "digest": j.digest} for j in fresh],
    )
    headers = [
        {
            "device": j.device, "seq": j.seq, "txn": j.txn, "kind": j.kind,
            "ts": ts_text(j.ts), "clock": j.clock, "parts": j.parts,
            "currency": j.totals["currency"],
            **{k: _text(j.totals[k]) for k in
               ("net", "tax", "total", "discount", "rounding", "change")},
            "tenders": json.dumps([[kind, _text(amount)] for kind, amount in j.tenders]),
            "taxes": json.dumps([[c, _text(r), _text(n), _text(t)] for c, r, n, t in j.taxes]),
            "applied_at": stamp,
        }
        for j in fresh
        if j.totals is not None
    ]  # fmt: skip
    insert_rows(JournalTxn, headers)
    lines = [
        {
            "device": j.device, "seq": j.seq, "kind": j.kind, "ts": ts_text(j.ts),
            "sku": line.sku, "condition": line.condition, "qty": _text(line.qty),
            "net": _text(line.net), "total": _text(line.total),
            "discount": _text(line.discount),
        }
        for j in fresh
        for line in j.lines
    ]  # fmt: skip
    insert_rows(JournalLine, lines)
    return JournalOutcome(fresh, conflicts)
