"""Customer-facing postings: sale, return, post-void and exchange.

Each is one atomic transaction (see posting.write). Validation happens inside the
same transaction, so "not returned twice" and "not voided twice" hold even with two
tills posting at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from kiosk import i18n
from kiosk.ledger import audit, catalog
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Staff, Tender, Txn, TxnLine
from kiosk.ledger.money import (
    CASH,
    ZERO,
    LineInput,
    MoneyError,
    PricedLine,
    TaxPolicy,
    price_line,
    round_cash,
    round_money,
    settle,
)
from kiosk.ledger.money import (
    Tender as TenderIn,
)
from kiosk.ledger.posting import DAMAGED, MAIN, LineRow, Posted, Posting, write
from kiosk.ledger.staff import either, role_name

RETURN_REASONS = ("damaged", "defective", "wrong_item", "unwanted", "not_as_described", "other")
CONDITIONS = {"resaleable": MAIN, "damaged": DAMAGED}
SELLABLE_KINDS = ("sale", "exchange")


@dataclass(frozen=True)
class SaleLine:
    sku: str
    qty: Decimal = Decimal(1)
    price: Decimal | None = None  # a price override; None = the item's price
    discount: Decimal = ZERO
    amount: Decimal | None = None  # fixed by a price-embedded barcode
    barcode: str | None = None
    lot: str | None = None


@dataclass(frozen=True)
class ReturnLine:
    sku: str
    qty: Decimal = Decimal(1)
    condition: str = "resaleable"
    line_no: int | None = None  # the line on the original receipt, when known


# ---------------------------------------------------------------- helpers


def base_units(unit: str, qty: Decimal, sku: str) -> int:
    """Stock units: pieces for "each", grams for "kg"."""
    if unit == "kg":
        return int((qty * 1000).to_integral_value(ROUND_HALF_UP))
    if qty != qty.to_integral_value():
        raise LedgerError(
            i18n._("{sku} is sold by the piece: quantity {qty} is not whole", sku=sku, qty=qty)
        )
    return int(qty)


_ITEMS_SQL = "SELECT sku, price, tax_code, unit, active, kit FROM item WHERE sku IN ({})"


def _load_items(ledger: Ledger, skus: set[str]) -> dict[str, tuple]:
    rows = ledger.db.execute_sql(_ITEMS_SQL.format(",".join("?" * len(skus))), tuple(skus))
    items = {row[0]: row for row in rows}
    missing = skus - items.keys()
    if missing:
        raise LedgerError(i18n._("unknown item {sku!r}", sku=sorted(missing)[0]))
    return items


def _component_moves(kit_sku: str, units: int, location: str) -> tuple[int, list]:
    bom, components = catalog.current_bom(kit_sku)
    return bom.id, [(c.component_id, location, units * c.qty) for c in components]


def _row(line_no: int, priced: PricedLine, **extra) -> LineRow:
    return LineRow(
        line_no=line_no,
        sku=priced.sku,
        qty=priced.qty,
        unit_price=priced.unit_price,
        tax_code=priced.tax_code,
        tax_rate=priced.tax_rate,
        gross=priced.gross,
        discount=priced.discount,
        net=priced.net,
        tax=priced.tax,
        total=priced.total,
        **extra,
    )


def _sale_part(
    ledger: Ledger, lines: Sequence[SaleLine], staff: str | None, first_line_no: int = 1
) -> tuple[list[LineRow], list[tuple[str, str, int]]]:
    if not lines:
        return [], []
    items = _load_items(ledger, {line.sku for line in lines})
    rows, moves = [], []
    for line_no, line in enumerate(lines, start=first_line_no):
        sku, price, tax_code, unit, active, kit = items[line.sku]
        if not active:
            raise LedgerError(i18n._("item {sku} is no longer sold", sku=sku))
        if line.qty <= 0:
            raise LedgerError(i18n._("{sku}: quantity must be above zero", sku=sku))
        unit_price = Decimal(price)
        if line.price is not None and line.price != unit_price:
            if staff is None:
                raise LedgerError(i18n._("{sku}: a price override needs a staff member", sku=sku))
            audit.record("price_override", staff, sku, "price", unit_price, line.price)
            unit_price = line.price
        try:
            priced = price_line(
                LineInput(sku, line.qty, unit_price, tax_code, line.discount, line.amount),
                ledger.policy,
            )
        except MoneyError as exc:
            raise LedgerError(str(exc)) from None
        units = base_units(unit, line.qty, sku)
        bom_id = None
        if kit == "bundle":
            bom_id, kit_moves = _component_moves(sku, units, MAIN)
            moves.extend((c, loc, -d) for c, loc, d in kit_moves)
        else:
            moves.append((sku, MAIN, -units))
        rows.append(_row(line_no, priced, barcode=line.barcode, bom_id=bom_id, lot=line.lot))
    return rows, moves


def _totals(posting: Posting) -> Posting:
    posting.net = sum((li.net for li in posting.lines), ZERO)
    posting.tax = sum((li.tax for li in posting.lines), ZERO)
    posting.total = sum((li.total for li in posting.lines), ZERO)
    posting.discount = sum((li.discount for li in posting.lines), ZERO)
    return posting


def _settle(posting: Posting, tenders: Sequence[TenderIn], policy: TaxPolicy) -> Posting:
    try:
        result = settle(posting.total, tenders, policy)
    except MoneyError as exc:
        raise LedgerError(str(exc)) from None
    posting.rounding, posting.change = result.rounding, result.change
    posting.tenders = [(t.kind, t.amount, t.reference) for t in tenders]
    return posting


def require_role(staff: str | None, *roles: str) -> Staff:
    member = Staff.get_or_none(Staff.code == staff) if staff else None
    if member is None or not member.active:
        raise LedgerError(
            i18n._(
                "needs a {roles}: no active staff member {staff!r}",
                roles=either(roles),
                staff=staff,
            )
        )
    if member.role not in roles:
        raise LedgerError(
            i18n._(
                "needs a {roles}; {code} is a {role}",
                roles=either(roles),
                code=member.code,
                role=role_name(member.role),
            )
        )
    return member


def find_receipt(number: str, kinds: Sequence[str] = SELLABLE_KINDS) -> Txn:
    txn = Txn.get_or_none(Txn.number == number)
    if txn is None or txn.kind not in kinds:
        raise LedgerError(i18n._("no sale with receipt number {number}", number=number))
    if Txn.select().where((Txn.ref == txn) & (Txn.kind == "void")).exists():
        raise LedgerError(i18n._("receipt {number} was voided", number=number))
    return txn


# ---------------------------------------------------------------- sale


def post_sale(
    ledger: Ledger,
    lines: Sequence[SaleLine],
    tenders: Sequence[TenderIn],
    staff: str | None = None,
    note: str | None = None,
) -> Posted:
    if not lines:
        raise LedgerError(i18n._("a sale needs at least one line"))
    with ledger.transaction():
        rows, moves = _sale_part(ledger, lines, staff)
        posting = _totals(Posting("sale", staff=staff, lines=rows, moves=moves, note=note))
        return write(ledger, _settle(posting, tenders, ledger.policy))


# ---------------------------------------------------------------- returns


def _share(full: Decimal, before: Decimal, qty: Decimal, of: Decimal, complete: bool, unit):
    """Part of a line amount for `qty` of `of` units; the last part takes the remainder
    so a line returned in pieces refunds exactly what was paid."""
    if complete:
        return full - before
    return round_money(full * qty / of, unit)


def _returned_so_far(line_ids: list[int]) -> dict[int, tuple[Decimal, ...]]:
    """Per sold line: qty, gross, discount, tax and total already returned or voided."""
    done: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO] * 5)
    for row in TxnLine.select().where(TxnLine.ref_line.in_(line_ids)):
        acc = done[row.ref_line_id]
        for i, value in enumerate((row.qty, row.gross, row.discount, row.tax, row.total)):
            acc[i] -= value
    return {key: tuple(value) for key, value in done.items()}


def _return_part(
    ledger: Ledger,
    receipt: str | None,
    lines: Sequence[ReturnLine],
    first_line_no: int = 1,
) -> tuple[Txn | None, list[LineRow], list[tuple[str, str, int]]]:
    rows: list[LineRow] = []
    moves: list[tuple[str, str, int]] = []
    for line in lines:
        if line.qty <= 0:
            raise LedgerError(i18n._("{sku}: return quantity must be above zero", sku=line.sku))
        if line.condition not in CONDITIONS:
            raise LedgerError(
                i18n._("condition must be one of {choices}", choices=", ".join(CONDITIONS))
            )
    if receipt is None:
        items = _load_items(ledger, {line.sku for line in lines})
        for line_no, line in enumerate(lines, start=first_line_no):
            sku, price, tax_code, unit, _, kit = items[line.sku]
            priced = price_line(LineInput(sku, -line.qty, Decimal(price), tax_code), ledger.policy)
            location = CONDITIONS[line.condition]
            units = base_units(unit, line.qty, sku)
            bom_id = None
            if kit == "bundle":
                bom_id, kit_moves = _component_moves(sku, units, location)
                moves.extend(kit_moves)
            else:
                moves.append((sku, location, units))
            rows.append(_row(line_no, priced, bom_id=bom_id, condition=line.condition))
        return None, rows, moves

    original = find_receipt(receipt)
    sold = [li for li in original.lines.order_by(TxnLine.line_no) if li.qty > 0]
    # Per sold line: qty, gross, discount, tax, total refunded so far (this return included).
    earlier = _returned_so_far([li.id for li in sold])
    progress = {li.id: list(earlier.get(li.id, (ZERO,) * 5)) for li in sold}
    items = _load_items(ledger, {li.sku for li in sold})
    unit = ledger.policy.unit
    line_no = first_line_no
    for want in lines:
        candidates = [
            li
            for li in sold
            if li.sku == want.sku and (want.line_no is None or li.line_no == want.line_no)
        ]
        if not candidates:
            raise LedgerError(
                i18n._("{sku} is not on receipt {receipt}", sku=want.sku, receipt=receipt)
            )
        returnable = sum((li.qty - progress[li.id][0] for li in candidates), ZERO)
        if want.qty > returnable:
            raise LedgerError(
                i18n._(
                    "only {returnable} of {sku} can still be returned on receipt {receipt}",
                    returnable=returnable,
                    sku=want.sku,
                    receipt=receipt,
                )
            )
        left = want.qty
        for li in candidates:
            done = progress[li.id]
            qty = min(left, li.qty - done[0])
            if qty <= 0:
                continue
            left -= qty
            complete = done[0] + qty == li.qty
            gross, discount, tax, total = (
                _share(full, before, qty, li.qty, complete, unit)
                for full, before in zip(
                    (li.gross, li.discount, li.tax, li.total), done[1:], strict=True
                )
            )
            for i, part in enumerate((qty, gross, discount, tax, total)):
                done[i] += part
            rows.append(
                LineRow(
                    line_no=line_no,
                    sku=li.sku,
                    qty=-qty,
                    unit_price=li.unit_price,
                    tax_code=li.tax_code,
                    tax_rate=li.tax_rate,
                    gross=-gross,
                    discount=-discount,
                    net=-(total - tax),
                    tax=-tax,
                    total=-total,
                    bom_id=li.bom_id,
                    ref_line_id=li.id,
                    condition=want.condition,
                    lot=li.lot,
                )
            )
            line_no += 1
            location = CONDITIONS[want.condition]
            units = base_units(items[li.sku][3], qty, li.sku)
            if li.bom_id is not None:
                for comp in catalog.bom_components(li.bom_id):
                    moves.append((comp.component_id, location, units * comp.qty))
            else:
                moves.append((li.sku, location, units))
    return original, rows, moves


def preview_return(
    ledger: Ledger, receipt: str | None, lines: Sequence[ReturnLine]
) -> list[LineRow]:
    """The refund lines a return would post, checked against the receipt; posts nothing."""
    with ledger.transaction():
        _, rows, _ = _return_part(ledger, receipt, lines)
    return rows


def tender_kinds(txn_id: int) -> set[str]:
    return {t.kind for t in Tender.select(Tender.kind).where(Tender.txn == txn_id)}


def default_refund_tenders(
    original: Txn | None, amount: Decimal, policy: TaxPolicy
) -> list[TenderIn]:
    """Refund to the original tenders: card and voucher first, up to what each paid
    less earlier refunds to it, the rest in cash (rounded to the cash step; a rest that
    rounds to nothing is a cash tender of zero, see money.settle). `amount` is positive."""

    def cash(left: Decimal) -> list[TenderIn]:
        rounded = round_cash(left, policy.cash_step, policy.unit)
        return [TenderIn(CASH, -rounded)] if left else []

    if original is None:
        return cash(amount)
    paid: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for tender in original.tenders:
        paid[tender.kind] += tender.amount
    paid[CASH] -= original.change
    refunded = (
        Tender.select(Tender.kind, Tender.amount)
        .join(Txn)
        .where((Txn.ref == original) & (Txn.kind.in_(("return", "exchange"))))
    )
    for tender in refunded:
        paid[tender.kind] += tender.amount  # refunds are negative
    out, left = [], amount
    for kind in sorted(paid, key=lambda k: (k == CASH, k)):
        if kind == CASH or left <= 0:
            continue
        part = min(left, paid[kind])
        if part > 0:
            out.append(TenderIn(kind, -part))
            left -= part
    if left > 0:
        out.extend(cash(left))
    return out


def refund_tenders(ledger: Ledger, receipt: str | None, amount: Decimal) -> list[TenderIn]:
    """The tenders that refund `amount` (positive) against `receipt` by default, in the
    documented order: card and voucher first, the rest in cash. Posts nothing."""
    if amount <= 0:
        return []
    with ledger.transaction():
        original = find_receipt(receipt) if receipt else None
        return default_refund_tenders(original, amount, ledger.policy)


def void_tenders(receipt: str) -> list[TenderIn]:
    """What a post-void of `receipt` pays back, per tender kind (negative amounts)."""
    original = find_receipt(receipt, kinds=("sale",))
    return [TenderIn(kind, -amount) for kind, amount in _net_paid(original).items() if amount]


def _net_paid(original: Txn) -> dict[str, Decimal]:
    net_paid: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for tender in original.tenders:
        net_paid[tender.kind] += tender.amount
    net_paid[CASH] -= original.change
    return net_paid


def _check_reason(reason: str) -> None:
    if reason not in RETURN_REASONS:
        choices = ", ".join(RETURN_REASONS)
        raise LedgerError(i18n._("return reason must be one of {choices}", choices=choices))


def post_return(
    ledger: Ledger,
    lines: Sequence[ReturnLine],
    reason: str,
    staff: str | None,
    receipt: str | None = None,
    tenders: Sequence[TenderIn] | None = None,
    note: str | None = None,
) -> Posted:
    """Return against a receipt (refund what was paid) or without one (current price)."""
    if not lines:
        raise LedgerError(i18n._("a return needs at least one line"))
    _check_reason(reason)
    with ledger.transaction():
        original, rows, moves = _return_part(ledger, receipt, lines)
        posting = _totals(
            Posting(
                "return",
                staff=staff,
                lines=rows,
                moves=moves,
                ref_id=original.id if original else None,
                reason=reason,
                note=note,
            )
        )
        if tenders is None:
            tenders = default_refund_tenders(original, -posting.total, ledger.policy)
        audit.record("return", staff, receipt, None, None, str(posting.total), reason)
        return write(ledger, _settle(posting, tenders, ledger.policy))


# ---------------------------------------------------------------- void


def post_void(
    ledger: Ledger,
    receipt: str,
    staff: str | None,
    reason: str = "post_void",
    tenders: Sequence[TenderIn] | None = None,
) -> Posted:
    """Undo a whole sale after it was posted: supervisors only, once, before any return.
    `tenders` (negative): how it is paid back when not exactly as it was paid (a card
    refund's reference, cash instead of a declined card refund); they must pay back
    what was paid within one cash step, the difference booked as rounding."""
    with ledger.transaction():
        require_role(staff, "supervisor")
        original = find_receipt(receipt, kinds=("sale",))
        if Txn.select().where(Txn.ref == original).exists():
            raise LedgerError(
                i18n._(
                    "receipt {receipt} already has returns; return the rest instead",
                    receipt=receipt,
                )
            )
        lines = list(original.lines.order_by(TxnLine.line_no))
        rows = [
            LineRow(
                line_no=li.line_no,
                sku=li.sku,
                qty=-li.qty,
                unit_price=li.unit_price,
                tax_code=li.tax_code,
                tax_rate=li.tax_rate,
                gross=-li.gross,
                discount=-li.discount,
                net=-li.net,
                tax=-li.tax,
                total=-li.total,
                barcode=li.barcode,
                bom_id=li.bom_id,
                ref_line_id=li.id,
                lot=li.lot,
            )
            for li in lines
        ]
        moves = [(m.sku, m.location, -m.delta) for m in original.moves]
        net_paid = _net_paid(original)
        posting = _totals(
            Posting("void", staff=staff, lines=rows, moves=moves, ref_id=original.id, reason=reason)
        )
        posting.rounding = -original.rounding
        posting.tenders = [(kind, -amount, None) for kind, amount in net_paid.items() if amount]
        if tenders is not None:
            back = sum((t.amount for t in tenders), ZERO)
            if any(t.amount >= 0 for t in tenders):
                raise LedgerError(i18n._("a void pays back: its tenders must be below zero"))
            rounding = back - posting.total
            step = max(ledger.policy.cash_step, ledger.policy.unit)
            if abs(rounding - posting.rounding) >= step:
                raise LedgerError(
                    i18n._(
                        "a void of {receipt} pays back {paid}, not {back}",
                        receipt=receipt,
                        paid=-sum(net_paid.values(), ZERO),
                        back=-back,
                    )
                )
            posting.rounding = rounding
            posting.tenders = [(t.kind, t.amount, t.reference) for t in tenders]
        audit.record("post_void", staff, receipt, None, str(original.total), None, reason)
        return write(ledger, posting)


# ---------------------------------------------------------------- exchange


def post_exchange(
    ledger: Ledger,
    receipt: str | None,
    returned: Sequence[ReturnLine],
    sold: Sequence[SaleLine],
    tenders: Sequence[TenderIn],
    staff: str | None,
    reason: str = "wrong_item",
) -> Posted:
    """Take items back and sell others in one transaction; the difference is paid
    (positive total) or refunded (negative total) through `tenders`."""
    if not returned or not sold:
        raise LedgerError(i18n._("an exchange needs returned and sold lines"))
    _check_reason(reason)
    with ledger.transaction():
        original, back_rows, back_moves = _return_part(ledger, receipt, returned)
        sale_rows, sale_moves = _sale_part(ledger, sold, staff, first_line_no=len(back_rows) + 1)
        posting = _totals(
            Posting(
                "exchange",
                staff=staff,
                lines=back_rows + sale_rows,
                moves=back_moves + sale_moves,
                ref_id=original.id if original else None,
                reason=reason,
            )
        )
        audit.record("exchange", staff, receipt, None, None, str(posting.total), reason)
        return write(ledger, _settle(posting, tenders, ledger.policy))
