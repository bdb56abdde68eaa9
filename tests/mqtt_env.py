"""The real Mosquitto of the tests: kiosk.testing.mosquitto, which the benches use too."""

from kiosk.testing.mosquitto import ROOT, Mosquitto, free_port, wait_until

__all__ = ["ROOT", "Mosquitto", "free_port", "wait_until"]
