"""`kiosk ledger verify`: prove the ledger is whole.

Balances equal the sum of their moves; every transaction balances (lines add up,
net + tax = total, tenders - change = total + rounding); every transaction has its
stock event in the outbox, in gap-free seq, carrying exactly its moves; no line was
returned more often than it was sold; every stored number is a number within the
ledger's bounds. It never crashes on a damaged ledger: what it cannot read is a
problem it reports, and each check runs even when another one failed.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from decimal import Decimal, InvalidOperation

from kiosk.ledger import payments
from kiosk.ledger.core import Ledger
from kiosk.ledger.migrations import MAX_AMOUNT, MAX_BALANCE, MAX_DELTA
from kiosk.ledger.posting import event_moves

ZERO = Decimal(0)
_PLAIN = re.compile(r"-?[0-9]+(\.[0-9]+)?")
MAX_PROBLEMS = 50


def verify(ledger: Ledger) -> list[str]:
    """Every problem found, as one line each; an empty list means the ledger is whole."""
    problems: list[str] = []
    sql = ledger.db.execute_sql
    checks = (
        ("stock balances", lambda: _balances(sql, problems)),
        ("transactions", lambda: _transactions(sql, problems)),
        ("the outbox", lambda: _outbox(ledger, sql, problems)),
        ("returns", lambda: _returns(sql, problems)),
        ("stored numbers", lambda: _stored_numbers(sql, problems)),
        ("the payment journal", lambda: _payment_journal(sql, problems)),
    )
    with ledger.db.atomic():  # one consistent snapshot
        for name, check in checks:
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - a damaged ledger is reported, not fatal
                problems.append(f"could not check {name}: {type(exc).__name__}: {exc}"[:300])
    return problems[:MAX_PROBLEMS] + (
        [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else []
    )


def _amount(value: object, where: str, problems: list[str], limit: int = MAX_AMOUNT) -> Decimal:
    """A stored decimal; an unreadable or out-of-range one is a problem and counts as 0."""
    try:
        number = Decimal(value) if isinstance(value, str | int) else None
    except InvalidOperation:
        number = None
    if isinstance(value, str) and not _PLAIN.fullmatch(value):
        number = None  # 'NaN', '1E+9', ' 1' are not how the ledger writes numbers
    if number is None or not number.is_finite() or abs(number) > limit:
        problems.append(f"{where}: {str(value)[:40]!r} is not a number within {limit}")
        return ZERO
    return number


def _whole(value: object, where: str, limit: int, problems: list[str]) -> int:
    if not isinstance(value, int) or abs(value) > limit:
        problems.append(f"{where}: {str(value)[:40]!r} is not a whole number within {limit}")
        return 0
    return value


def _balances(sql, problems: list[str]) -> None:
    # Summed here, not by SUM(): Python's integers cannot overflow on a damaged ledger.
    moved: dict[tuple[str, str], int] = defaultdict(int)
    for txn_id, sku, loc, delta in sql("SELECT txn_id, sku, location, delta FROM stock_move"):
        moved[(sku, loc)] += _whole(delta, f"txn {txn_id} move of {sku}", MAX_DELTA, problems)
    held = {
        (sku, loc): _whole(n, f"stock {sku}@{loc}", MAX_BALANCE, problems)
        for sku, loc, n in sql("SELECT sku, location, on_hand FROM stock_balance")
    }
    for key in sorted(moved.keys() | held.keys()):
        if moved.get(key, 0) != held.get(key, 0):
            problems.append(
                f"stock {key[0]}@{key[1]}: balance {held.get(key, 0)} but moves sum to "
                f"{moved.get(key, 0)}"
            )


def _stored_numbers(sql, problems: list[str]) -> None:
    """The line columns no other check reads are plain numbers too (the totals, tenders
    and returned quantities are read, and checked, by _transactions and _returns)."""
    for line_id, txn_id, qty, unit_price, tax_rate, gross in sql(
        "SELECT id, txn_id, qty, unit_price, tax_rate, gross FROM txn_line"
    ):
        where = f"txn {txn_id} line {line_id}"
        for value in (qty, unit_price, tax_rate, gross):
            _amount(value, where, problems)


def _transactions(sql, problems: list[str]) -> None:
    sums: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO, ZERO])
    for txn_id, line_no, net, tax, total, discount in sql(
        "SELECT txn_id, line_no, net, tax, total, discount FROM txn_line"
    ):
        where = f"txn {txn_id} line {line_no}"
        net, tax, total = (_amount(v, where, problems) for v in (net, tax, total))
        if net + tax != total:
            problems.append(f"txn {txn_id} line {line_no}: net {net} + tax {tax} != {total}")
        acc = sums[txn_id]
        acc[0] += net
        acc[1] += tax
        acc[2] += total
        acc[3] += _amount(discount, where, problems)
    paid: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for txn_id, amount in sql("SELECT txn_id, amount FROM tender"):
        paid[txn_id] += _amount(amount, f"txn {txn_id} tender", problems)
    for txn_id, number, net, tax, total, discount, rounding, change in sql(
        "SELECT id, number, net, tax, total, discount, rounding, change FROM txn"
    ):
        header = [_amount(v, number, problems) for v in (net, tax, total, discount)]
        if header != sums[txn_id]:
            problems.append(f"{number}: totals {header} differ from its lines {sums[txn_id]}")
        if header[0] + header[1] != header[2]:
            problems.append(f"{number}: net + tax != total")
        due = header[2] + _amount(rounding, number, problems)
        if paid[txn_id] - _amount(change, number, problems) != due:
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
        except (ValueError, TypeError, RecursionError):
            problems.append(f"event {seq}: payload is not JSON")
            continue
        if not isinstance(event, dict):
            problems.append(f"event {seq}: payload is not a JSON object")
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
        where = f"txn {txn_id} line {line_no}"
        sold[line_id] = (txn_id, line_no, _amount(qty, where, problems))
        returned[line_id] -= _amount(back, f"a return of {where}", problems)
    for line_id, (txn_id, line_no, qty) in sold.items():
        if returned[line_id] > qty:
            problems.append(f"txn {txn_id} line {line_no}: {returned[line_id]} returned of {qty}")


# ---------------------------------------------------------------- the payment journal

_SETTLED_BY_HAND = ("reversed", "refund_needed", "resolved", "unposted")
_NOT_TAKEN = ("declined", "aborted", "failed", "not_charged")


def _payment_journal(sql, problems: list[str]) -> None:
    """Every payment the terminal approved is in a posted transaction's tenders with
    its amount (a refund's as a negative tender), or was reversed, refunded or
    resolved by hand, or is still open (listed as unsettled for staff); nothing that
    was not taken carries an approval; no column holds anything like a card number."""
    tenders: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for number, reference, amount in sql(
        "SELECT t.number, d.reference, d.amount FROM tender d JOIN txn t ON t.id = d.txn_id "
        "WHERE d.reference IS NOT NULL"
    ):
        tenders[(number, reference)].append(_amount(amount, f"{number} tender", problems))
        if payments.looks_like_card_number(reference):
            problems.append(f"{number}: a tender's reference looks like a card number")
    columns = "id, kind, state, amount, reference, txn, receipt_no, trace, terminal_id, approval"
    columns += ", terminal, note, request"
    for row in sql(f"SELECT {columns} FROM payment ORDER BY id"):
        pid, kind, state, amount, reference, txn = row[:6]
        where = f"payment {pid} ({kind}, {state})"
        for value in (*row[4:-1], _without_barcodes(row[-1])):
            if isinstance(value, str) and payments.looks_like_card_number(value):
                problems.append(
                    f"{where}: a stored text looks like a card number (kiosk payment scrub)"
                )
                break
        money = _amount(amount, where, problems)
        if state == "committed":
            want = money if kind == "authorize" else -money
            if want not in tenders.get((txn or "", reference or ""), []):
                problems.append(
                    f"{where}: {reference!r} for {money} is not in the tenders of a posted "
                    f"sale, return or void {txn!r}"
                )
        elif reference and state in _NOT_TAKEN:
            problems.append(f"{where}: has an approval ({reference}) but says nothing was taken")
        elif state not in ("requested", "unknown", "approved", *_SETTLED_BY_HAND, *_NOT_TAKEN):
            problems.append(f"{where}: unknown state")


def _without_barcodes(request: object) -> object:
    """A refund's request, less its sold lines' barcodes (EAN-13 has 13 digits too)."""
    try:
        data = json.loads(request) if isinstance(request, str) else None
    except ValueError:
        return request
    if not isinstance(data, dict):
        return request
    for line in data.get("sold") or []:
        if isinstance(line, dict):
            line.pop("barcode", None)
    return json.dumps(data)
