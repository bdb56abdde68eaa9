"""Money: Decimal only, with one documented rounding rule.

Rule (see README, "Money"): every line is rounded on its own, half away from zero,
to the currency's minor unit:

* line amount  = round(quantity x unit price), or the amount printed in a
  price-embedded barcode; minus the line discount.
* prices include tax:  tax = round(amount x rate / (1 + rate)), net = amount - tax
* prices exclude tax:  net = amount, tax = round(net x rate), total = net + tax

Receipt totals are sums of rounded lines, so lines + tax = total always holds, and
the tax summary per rate is the sum of that rate's line taxes.
Cash is rounded once, on the amount left to pay in cash (e.g. to 0.05); the
difference is recorded as `rounding`, so tenders - change = total + rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from kiosk import i18n

ZERO = Decimal(0)
CASH = "cash"
NON_CASH_KINDS = frozenset({"card", "voucher"})
TENDER_KINDS = NON_CASH_KINDS | {CASH}


class MoneyError(ValueError):
    """Amounts that do not add up: an underpaid sale, change from a card, ..."""


def to_decimal(value: object, what: str = "amount") -> Decimal:
    """Decimal from str/int/Decimal; floats are refused so no binary fraction sneaks in."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str) and not isinstance(value, bool):
        try:
            result = Decimal(str(value).strip())
        except ArithmeticError:
            raise MoneyError(
                i18n._("{what} {value!r} is not a number", what=what, value=value)
            ) from None
    else:
        raise MoneyError(
            i18n._(
                "{what} must be a decimal string, not {name}", what=what, name=type(value).__name__
            )
        )
    if not result.is_finite():
        raise MoneyError(i18n._("{what} {value!r} is not a finite number", what=what, value=value))
    return result


def round_money(amount: Decimal, unit: Decimal) -> Decimal:
    return amount.quantize(unit, rounding=ROUND_HALF_UP)


def round_cash(amount: Decimal, step: Decimal, unit: Decimal) -> Decimal:
    """Round to the nearest cash step (0.05 ...), half away from zero."""
    steps = (amount / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return round_money(steps * step, unit)


@dataclass(frozen=True)
class TaxPolicy:
    rates: Mapping[str, Decimal]
    prices_include_tax: bool = True
    unit: Decimal = Decimal("0.01")
    cash_step: Decimal = Decimal("0.01")

    def rate(self, code: str) -> Decimal:
        try:
            return self.rates[code]
        except KeyError:
            raise MoneyError(i18n._("unknown tax category {code!r}", code=code)) from None

    @classmethod
    def from_config(cls, money) -> TaxPolicy:
        return cls(
            rates=dict(money.tax_rates),
            prices_include_tax=money.prices_include_tax,
            unit=money.minor_unit,
            cash_step=money.cash_rounding,
        )


@dataclass(frozen=True)
class LineInput:
    sku: str
    qty: Decimal
    unit_price: Decimal
    tax_code: str
    discount: Decimal = ZERO
    amount: Decimal | None = None  # fixed by a price-embedded barcode


@dataclass(frozen=True)
class PricedLine:
    sku: str
    qty: Decimal
    unit_price: Decimal
    tax_code: str
    tax_rate: Decimal
    gross: Decimal  # before discount
    discount: Decimal
    total: Decimal  # what the customer pays for the line
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class TaxSummary:
    code: str
    rate: Decimal
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class PricedCart:
    lines: tuple[PricedLine, ...]
    net: Decimal
    tax: Decimal
    total: Decimal
    discount: Decimal
    taxes: tuple[TaxSummary, ...] = field(default=())


def price_line(line: LineInput, policy: TaxPolicy) -> PricedLine:
    rate = policy.rate(line.tax_code)
    unit = policy.unit
    if line.amount is not None:
        gross = round_money(line.amount, unit)
    else:
        gross = round_money(line.qty * line.unit_price, unit)
    discount = round_money(line.discount, unit)
    if discount and abs(discount) > abs(gross):
        raise MoneyError(
            i18n._(
                "discount {discount} on {sku} exceeds the line amount {gross}",
                discount=discount,
                sku=line.sku,
                gross=gross,
            )
        )
    amount = gross - discount
    if policy.prices_include_tax:
        tax = round_money(amount * rate / (1 + rate), unit)
        net, total = amount - tax, amount
    else:
        tax = round_money(amount * rate, unit)
        net, total = amount, amount + tax
    return PricedLine(
        sku=line.sku,
        qty=line.qty,
        unit_price=line.unit_price,
        tax_code=line.tax_code,
        tax_rate=rate,
        gross=gross,
        discount=discount,
        total=total,
        net=net,
        tax=tax,
    )


def summarize(lines: Sequence[PricedLine]) -> PricedCart:
    by_code: dict[str, list[PricedLine]] = {}
    for line in lines:
        by_code.setdefault(line.tax_code, []).append(line)
    taxes = tuple(
        TaxSummary(
            code=code,
            rate=group[0].tax_rate,
            net=sum((li.net for li in group), ZERO),
            tax=sum((li.tax for li in group), ZERO),
        )
        for code, group in sorted(by_code.items())
    )
    return PricedCart(
        lines=tuple(lines),
        net=sum((li.net for li in lines), ZERO),
        tax=sum((li.tax for li in lines), ZERO),
        total=sum((li.total for li in lines), ZERO),
        discount=sum((li.discount for li in lines), ZERO),
        taxes=taxes,
    )


def price_cart(lines: Iterable[LineInput], policy: TaxPolicy) -> PricedCart:
    return summarize([price_line(line, policy) for line in lines])


@dataclass(frozen=True)
class Tender:
    kind: str
    amount: Decimal
    reference: str | None = None  # a card terminal's approval code; never a card number


@dataclass(frozen=True)
class Settlement:
    total: Decimal
    rounding: Decimal  # cash rounding: due = total + rounding
    tendered: Decimal
    change: Decimal

    @property
    def due(self) -> Decimal:
        return self.total + self.rounding


def settle(total: Decimal, tenders: Sequence[Tender], policy: TaxPolicy) -> Settlement:
    """Check that tenders pay `total` (a refund when negative) and work out change.

    Card and voucher tenders go first and may not exceed what is left to pay; cash
    pays the rest, rounded to the cash step, and only cash gives change. A cash tender
    of zero says "the rest in cash": when the rest rounds to nothing (0.02 at a 0.05
    step), nothing changes hands and the rest is rounding.
    """
    if not tenders:
        if total:
            raise MoneyError(i18n._("nothing tendered against {total}", total=total))
        return Settlement(total, ZERO, ZERO, ZERO)
    sign = -1 if total < 0 else 1
    remaining = abs(total)
    cash = ZERO
    in_cash = False
    for tender in tenders:
        if tender.kind not in TENDER_KINDS:
            raise MoneyError(i18n._("unknown tender kind {kind!r}", kind=tender.kind))
        amount = to_decimal(tender.amount, f"{tender.kind} tender") * sign
        if amount < 0 or (amount == 0 and tender.kind != CASH):
            raise MoneyError(
                i18n._(
                    "{kind} tender {amount} has the wrong sign",
                    kind=tender.kind,
                    amount=tender.amount,
                )
            )
        if round_money(amount, policy.unit) != amount:
            raise MoneyError(
                i18n._(
                    "{kind} tender {amount} is finer than the currency",
                    kind=tender.kind,
                    amount=tender.amount,
                )
            )
        if tender.kind == CASH:
            cash += amount
            in_cash = True
        else:
            if amount > remaining:
                raise MoneyError(
                    i18n._(
                        "{kind} tender {amount} exceeds the {remaining} left to pay",
                        kind=tender.kind,
                        amount=tender.amount,
                        remaining=remaining,
                    )
                )
            remaining -= amount
    rounding = ZERO
    if in_cash:
        cash_due = round_cash(remaining, policy.cash_step, policy.unit)
        rounding = cash_due - remaining
        if cash < cash_due:
            raise MoneyError(
                i18n._(
                    "cash {cash} does not cover {due}",
                    cash=cash * sign,
                    due=cash_due * sign,
                )
            )
        change = cash - cash_due
    elif remaining:
        raise MoneyError(i18n._("tenders leave {amount} unpaid", amount=remaining * sign))
    else:
        change = ZERO
    tendered = sum((to_decimal(t.amount) for t in tenders), ZERO)
    return Settlement(total, rounding * sign, tendered, change * sign)
