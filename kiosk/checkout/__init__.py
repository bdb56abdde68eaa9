"""The checkout presenter: a pure-Python state machine every screen and replay drive.

Never imports Kivy. Every UI action is a method returning an Outcome; every change
is announced to subscribers as an Event.
"""

from kiosk.checkout.session import Checkout, Event, Outcome, State

__all__ = ["Checkout", "Event", "Outcome", "State"]
