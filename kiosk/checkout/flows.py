"""State held by the staff flows while they are open (returns, counts, receiving, kits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from kiosk.checkout.cart import CartLine
from kiosk.ledger.money import Tender
from kiosk.ledger.sales import ReturnLine


@dataclass
class ReturnFlow:
    receipt: str | None = None
    lines: list[ReturnLine] = field(default_factory=list)
    sold: list[CartLine] = field(default_factory=list)  # exchange: what goes out instead
    reason: str = "unwanted"


@dataclass
class PendingPayment:
    """What PAYING will post once covered: a sale, or the balance of an exchange."""

    kind: str = "sale"  # sale or exchange
    tenders: list[Tender] = field(default_factory=list)
    exchange: ReturnFlow | None = None


@dataclass
class CountFlow:
    counted: dict[str, int] = field(default_factory=dict)
    moments: dict[str, datetime] = field(default_factory=dict)


@dataclass
class ReceivingFlow:
    reference: str | None = None
    received: dict[str, int] = field(default_factory=dict)


@dataclass
class KitFlow:
    sku: str
    name: str
    components: list[tuple[str, str, int, int]]  # sku, name, per kit, on hand

    def shortfall(self, kits: int) -> list[str]:
        return [
            f"{name}: need {per * kits}, have {have}"
            for _, name, per, have in self.components
            if per * kits > have
        ]


@dataclass(frozen=True)
class Approval:
    """An action waiting for staff: performed when an allowed member logs in."""

    action: str
    args: tuple
    roles: tuple[str, ...]
    reason: str
    amount: Decimal | None = None
