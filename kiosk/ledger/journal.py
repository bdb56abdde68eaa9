"""The transaction journal: what a money transaction was, for the shop controller's KPIs.

Every sale, return, void and exchange gets, inside its own posting transaction, one
or more journal messages in `journal_outbox`, keyed by the seq of the transaction's
stock event: totals, totals by tax code, tenders by kind (amounts only: never a card
number, a terminal reference or anything a card terminal printed) and lines summed
per SKU and condition. The outbox publisher sends them on the kiosk's journal topic
exactly as it sends stock events (at least once, PUBACK, resent on a resync); the
controller applies each (device, seq, part) once. See README, "Transaction journal".

A transaction with more summed lines than LINES_PER_PART goes out in parts, each under
the broker's packet limit whatever its SKUs; part 1 alone carries the totals.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # posting imports this module: no cycle at run time
    from kiosk.ledger.posting import Posting

log = logging.getLogger(__name__)
JOURNAL_KINDS = ("sale", "return", "void", "exchange")
LINES_PER_PART = 200  # ~100 bytes a line at most: a part stays far under 64 KiB
MAX_TENDERS = 16  # tender kinds in one transaction (the parser's bound too)
MAX_TAXES = 16  # tax codes in one transaction

_INSERT_SQL = (
    "INSERT INTO journal_outbox (seq, part, parts, payload, created_at, state, attempts) "
    "VALUES (?, ?, ?, ?, ?, 'pending', 0)"
)


def _text(value: Decimal) -> str:
    """A plain decimal (no exponent): '0.50', '-2', never '1E+1'."""
    return format(value, "f")


def messages(
    posting: Posting, device: str, seq: int, number: str, ts: str, clock: str, currency: str
) -> list[dict]:
    """The journal messages of one posted money transaction (one per part)."""
    taxes: dict[str, list[Decimal]] = {}
    lines: dict[tuple[str, str | None], list[Decimal]] = {}
    for li in posting.lines:
        tax = taxes.setdefault(li.tax_code, [li.tax_rate, Decimal(0), Decimal(0)])
        tax[1] += li.net
        tax[2] += li.tax
        line = lines.setdefault((li.sku, li.condition), [Decimal(0)] * 4)
        for at, value in enumerate((li.qty, li.net, li.total, li.discount)):
            line[at] += value
    tenders: dict[str, Decimal] = defaultdict(Decimal)
    for kind, amount, _reference in posting.tenders:  # the reference never leaves the kiosk
        tenders[kind] += Decimal(str(amount))  # str from some callers: as the SQL gets it
    rows = [
        {
            "sku": sku,
            "qty": _text(qty),
            "net": _text(net),
            "total": _text(total),
            "discount": _text(discount),
            **({"condition": condition} if condition else {}),
        }
        for (sku, condition), (qty, net, total, discount) in sorted(
            lines.items(), key=lambda item: (item[0][0], item[0][1] or "")
        )
    ]
    chunks = [rows[at : at + LINES_PER_PART] for at in range(0, len(rows), LINES_PER_PART)]
    chunks = chunks or [[]]
    header = {
        "v": 1,
        "device": device,
        "seq": seq,
        "parts": len(chunks),
        "txn": number,
        "kind": posting.kind,
        "ts": ts,
        "clock": clock,
    }
    totals = {
        "currency": currency,
        "net": _text(posting.net),
        "tax": _text(posting.tax),
        "total": _text(posting.total),
        "discount": _text(posting.discount),
        "rounding": _text(posting.rounding),
        "change": _text(posting.change),
        "taxes": [
            {"code": code, "rate": _text(rate), "net": _text(net), "tax": _text(tax)}
            for code, (rate, net, tax) in sorted(taxes.items())
        ][:MAX_TAXES],
        "tenders": [
            {"kind": kind, "amount": _text(amount)} for kind, amount in sorted(tenders.items())
        ][:MAX_TENDERS],
    }
    return [
        {**header, "part": part, **(totals if part == 1 else {}), "lines": chunk}
        for part, chunk in enumerate(chunks, start=1)
    ]


def append(cursor, posting: Posting, device: str, seq: int, number: str, ts: str, clock: str,
           currency: str) -> None:  # fmt: skip
    """Queue the journal of a money transaction inside the posting's own transaction."""
    if posting.kind not in JOURNAL_KINDS:
        return
    try:
        parts = messages(posting, device, seq, number, ts, clock, currency)
    except Exception:  # noqa: BLE001 - a sale is never refused for its KPI summary
        log.exception("no journal for %s (the sale is posted; KPIs will miss it)", number)
        return
    cursor.executemany(
        _INSERT_SQL,
        [(seq, m["part"], m["parts"], json.dumps(m, separators=(",", ":")), ts) for m in parts],
    )
