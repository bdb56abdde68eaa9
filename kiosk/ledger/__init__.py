"""The local ledger: peewee models on SQLite and the services that post to them.

Never imports Kivy, drivers or MQTT: everything above depends on it, not the reverse.
"""

from kiosk.ledger.core import Ledger, LedgerError

__all__ = ["Ledger", "LedgerError"]
