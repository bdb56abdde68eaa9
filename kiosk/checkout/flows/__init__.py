"""The staff flows, one module each: its open state (a dataclass), its `FLOW` for the
core (the state it runs in, its scans, its snapshot entry) and its methods as a mixin.
Adding a flow: write its module, then register it below (a `State` member for it in
core.py too). The order here is the snapshot's order."""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.checkout.cart import CartLine
from kiosk.checkout.core import register
from kiosk.checkout.flows import counting, kits, receiving
from kiosk.checkout.flows.counting import CountFlow
from kiosk.checkout.flows.kits import KitFlow
from kiosk.checkout.flows.receiving import ReceivingFlow
from kiosk.ledger.sales import ReturnLine


@dataclass
class ReturnFlow:
    receipt: str | None = None
    lines: list[ReturnLine] = field(default_factory=list)
    sold: list[CartLine] = field(default_factory=list)  # exchange: what goes out instead
    reason: str = "unwanted"


for _module in (counting, receiving, kits):
    register(_module.FLOW)

MIXINS = (
    counting.CountingMixin,
    receiving.ReceivingMixin,
    kits.KitsMixin,
)  # the Checkout's flow mixins


__all__ = ["MIXINS", "ReturnFlow", "CountFlow", "ReceivingFlow", "KitFlow"]
