"""`kiosk ledger verify`: prove the ledger is whole.

Balances equal the sum of their moves; every transaction balances (lines add up,
net + tax = total, tenders - change = total + rounding); every transaction has its
stock event in the outbox, in gap-free seq, carrying exactly its moves; no line was
returned more often than it was sold.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal

from kiosk.ledger.core import Ledger
from kiosk.ledger.posting import event_moves

ZERO = Decimal(0)
MAX_PROBLEMS = 50


def verify(ledger: Ledger) -> list[str]:
    """Every problem found, as one line each; an empty list means the ledger is whole."""
    problems: list[str] = []
    sql = ledger.db.execute_sql
    with ledger.db.atomic():  # one consistent snapshot
        _balances(sql, problems)
        _transactions(sql, problems)
        _outbox(ledger, sql, problems)
        _returns(sql, problems)
    return problems[:MAX_PROBLEMS] + (
        [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else []
    )


def _balances(sql, problems: list[str]) -> None:
    moved = {
        (sku, loc): total
        for sku, loc, total in sql(
            "SELECT sku, location, SUM(delta) FROM stock_move GROUP BY sku, location"
        )
    }
    held = {
        (sku, loc): n for sku, loc, n in sql("SELECT sku, location, on_hand FROM stock_balance")
    }
    for key in sorted(moved.keys() | held.keys()):
        if moved.get(key, 0) != held.get(key, 0):
            problems.append(
                f"stock {key[0]}@{key[1]}: balance {held.get(key, 0)} but moves sum to "
                f"{moved.get(key, 0)}"
            )


def _transactions(sql, problems: list[str]) -> None:
    sums: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO, ZERO])
    for txn_id, line_no, net, tax, total, discount in sql(
        "SELECT txn_id, line_no, net, tax, total, discount FROM txn_line"
    ):
        net, tax, total = Decimal(net), Decimal(tax), Decimal(total)
        if net + tax != total:
            problems.append(f"txn {txn_id} line {line_no}: net {net} + tax {tax} != {total}")
        acc = sums[txn_id]
        acc[0] += net
        acc[1] += tax
        acc[2] += total
        acc[3] += Decimal(discount)
    paid: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for txn_id, amount in sql("SELECT txn_id, amount FROM tender"):
        paid[txn_id] += Decimal(amount)
    for txn_id, number, net, tax, total, discount, rounding, change in sql(
        "SELECT id, number, net, tax, total, discount, rounding, change FROM txn"
    ):
        header = [Decimal(net), Decimal(tax), Decimal(total), Decimal(discount)]
        if header != sums[txn_id]:
            problems.append(f"{number}: totals {header} differ from its lines {sums[txn_id]}")
        if header[0] + header[1] != header[2]:
            problems.append(f"{number}: net + tax != total")
        due = Decimal(total) + Decimal(rounding)
        if paid[txn_id] - Decimal(change) != due:
            problems.append(
                f"{number}: tenders {paid[txn_id]} - change {change} != total + rounding {due}"
            )


def _outbox(ledger: Ledger, sql, problems: list[str]) -> None:
    moves: dict[int, list] = defaultdict(list)
    for txn_id, sku, loc, delta in sql("SELECT txn_id, sku, location, delta FROM stock_move"):
        moves[txn_id].append((sku, loc, delta))
    events = {
        txn_id: (seq, payload)
        for txn_id, seq, payload in sql("SELECT txn_id, seq, payload FROM outbox ORDER BY seq")
    }
    seqs = sorted(seq for seq, _ in events.values())
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"outbox seq has gaps or does not start at 1 ({len(seqs)} events)")
    if seqs and ledger.peek_value("seq") != seqs[-1]:
        problems.append(f"seq counter {ledger.peek_value('seq')} != last event {seqs[-1]}")
    for txn_id, number, kind in sql("SELECT id, number, kind FROM txn"):
        if txn_id not in events:
            problems.append(f"{number}: no stock event in the outbox")
            continue
        seq, payload = events[txn_id]
        try:
            event = json.loads(payload)
        except ValueError:
            problems.append(f"event {seq}: payload is not JSON")
            continue
        expected = event_moves(moves[txn_id])
        if event.get("moves") != expected or event.get("txn") != number:
            problems.append(f"event {seq}: payload does not match {number}'s moves")
        if event.get("seq") != seq or event.get("kind") != kind or event.get("v") != 1:
            problems.append(f"event {seq}: seq, kind or version fields are wrong")
    if ledger.peek_value("txn") < max(events.keys(), default=0):
        problems.append("txn counter is behind the transactions")


def _returns(sql, problems: list[str]) -> None:
    sold: dict[int, tuple[int, int, Decimal]] = {}
    returned: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for line_id, txn_id, line_no, qty, back in sql(
        "SELECT s.id, s.txn_id, s.line_no, s.qty, r.qty FROM txn_line r "
        "JOIN txn_line s ON r.ref_line_id = s.id"
    ):
        sold[line_id] = (txn_id, line_no, Decimal(qty))
        returned[line_id] -= Decimal(back)
    for line_id, (txn_id, line_no, qty) in sold.items():
        if returned[line_id] > qty:
            problems.append(f"txn {txn_id} line {line_no}: {returned[line_id]} returned of {qty}")
