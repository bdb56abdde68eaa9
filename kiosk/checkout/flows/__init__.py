"""The staff flows, one module each: its open state (a dataclass), its `FLOW` for the
core (the state it runs in, its scans, its snapshot entry) and its methods as a mixin.
Adding a flow: write its module, then register it below (a `State` member for it in
core.py too). The order here is the snapshot's order."""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.checkout.cart import CartLine
from kiosk.checkout.core import register
from kiosk.checkout.flows import counting, receiving
from kiosk.checkout.flows.counting import CountFlow
from kiosk.checkout.flows.receiving import ReceivingFlow
from kiosk.ledger.sales import ReturnLine


@dataclass
class ReturnFlow:
    receipt: str | None = None
    lines: list[ReturnLine] = field(default_factory=list)
    sold: list[CartLine] = field(default_factory=list)  # exchange: what goes out instead
    reason: str = "unwanted"


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


for _module in (counting, receiving):
    register(_module.FLOW)

MIXINS = (counting.CountingMixin, receiving.ReceivingMixin)  # the Checkout's flow mixins


__all__ = ["MIXINS", "ReturnFlow", "CountFlow", "ReceivingFlow", "KitFlow"]
