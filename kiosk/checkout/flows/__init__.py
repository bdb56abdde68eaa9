"""The staff flows, one module each: its open state (a dataclass), its `FLOW` for the
core (the state it runs in, its scans, its snapshot entry) and its methods as a mixin.
Adding a flow: write its module, then register it below (a `State` member for it in
core.py too). The order here is the snapshot's order."""

from __future__ import annotations

from kiosk.checkout.core import register
from kiosk.checkout.flows import counting, kits, receiving, returns, staff
from kiosk.checkout.flows.counting import CountFlow
from kiosk.checkout.flows.kits import KitFlow
from kiosk.checkout.flows.receiving import ReceivingFlow
from kiosk.checkout.flows.returns import ReturnFlow

for _module in (returns, counting, receiving, kits):
    register(_module.FLOW)

# the Checkout's bases, one mixin a flow (session.py)
MIXINS = (
    returns.ReturnsMixin,
    counting.CountingMixin,
    receiving.ReceivingMixin,
    kits.KitsMixin,
    staff.StaffMenuMixin,
)


__all__ = ["MIXINS", "ReturnFlow", "CountFlow", "ReceivingFlow", "KitFlow"]
