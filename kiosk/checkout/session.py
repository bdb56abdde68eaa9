"""Checkout: one kiosk's session, composed from its parts.

The core (core.py) holds the states, events, attributes and staff approvals; selling,
paying, the card terminal, its recovery and card refunds are mixins beside it; each
staff flow is a module in flows/. Screens, replay and tests import from here.
"""

from __future__ import annotations

from kiosk.checkout.core import CheckoutCore, Event, Outcome, State
from kiosk.checkout.flows import MIXINS as FLOW_MIXINS
from kiosk.checkout.paying import PayingMixin
from kiosk.checkout.recovery import RecoveryMixin
from kiosk.checkout.refunds import RefundsMixin
from kiosk.checkout.selling import SellingMixin
from kiosk.checkout.terminal import TerminalMixin


class Checkout(
    *FLOW_MIXINS,
    RefundsMixin,
    RecoveryMixin,
    TerminalMixin,
    PayingMixin,
    SellingMixin,
    CheckoutCore,
):
    """One kiosk's session: every UI action a method, every change an Event."""


__all__ = ["Checkout", "Event", "Outcome", "State"]
