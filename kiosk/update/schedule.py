"""The quiet moment for the switch to an installed update (kiosk-update-switch.timer,
every minute): no customer session open and no sale for [update] idle_minutes, or the
configured switch_hour whatever the kiosk is doing.

What the app is doing comes from two places, both on the data partition and readable by
root while the app runs: the ledger (the time of the last posted transaction) and the
session file the app keeps beside it (`session.state`: one word, `attract` when nobody
is at the kiosk, anything else while a session is open; its modification time says how
fresh it is). A kiosk without the session file (an app that does not write it yet)
counts as quiet once no sale was posted for idle_minutes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kiosk.update import dbcopy
from kiosk.update.settings import UpdateConfig

log = logging.getLogger(__name__)
SESSION_FILE = "session.state"
STALE = timedelta(minutes=30)  # a session file this old was left by a crash or power cut


def last_sale(ledger: Path) -> datetime | None:
    """The time of the newest posted transaction (UTC), None for an empty ledger."""
    if not Path(ledger).exists():
        return None
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT max(ts) FROM txn").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
        dbcopy.restore_owner(Path(ledger))  # root reads here; the app must still open it
    if not row or not row[0]:
        return None
    return datetime.fromisoformat(row[0].replace("Z", "+00:00"))


def session(folder: Path, now: datetime) -> str | None:
    """The app's session word, None if it keeps none or the file is stale."""
    path = Path(folder) / SESSION_FILE
    try:
        word = path.read_text().strip()
        changed = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None
    return word if now - changed < STALE else None


class SessionWriter:
    """The app's side of the session file: the checkout's state word, written (atomically,
    tmp + rename) when it changes and at least every REFRESH_S while events come, so a
    session open longer than STALE still reads as open. A checkout subscriber: it runs
    on the checkout's worker thread and never raises (selling goes on without it)."""

    REFRESH_S = 60.0

    def __init__(self, folder: Path, clock=time.monotonic) -> None:
        self.path = Path(folder) / SESSION_FILE
        self.clock = clock
        self.word: str | None = None
        self.written_at = -1e18

    def on_event(self, event) -> None:
        self.note(str(getattr(event.state, "value", event.state)))

    def note(self, word: str) -> None:
        now = self.clock()
        if word == self.word and now - self.written_at < self.REFRESH_S:
            return
        try:
            temporary = self.path.with_name(f".{SESSION_FILE}.tmp")
            temporary.write_text(word + "\n")
            os.replace(temporary, self.path)
        except OSError as exc:  # a full or read-only disk: the switch waits for the hour
            log.warning("cannot write %s: %s", self.path, exc)
            return
        self.word, self.written_at = word, now


def quiet_moment(
    now: datetime,
    settings: UpdateConfig,
    last_sale_at: datetime | None,
    session_word: str | None,
    local_hour: int | None = None,
) -> tuple[bool, str]:
    """(switch now?, why). `now` is UTC; `local_hour` the kiosk's local hour."""
    hour = now.astimezone().hour if local_hour is None else local_hour
    if settings.switch_hour is not None and hour == settings.switch_hour:
        return True, f"the configured hour ({settings.switch_hour}:00)"
    if session_word not in (None, "attract"):
        return False, f"a customer session is open ({session_word})"
    quiet_for = settings.idle_minutes
    if last_sale_at is not None and now - last_sale_at < timedelta(minutes=quiet_for):
        return False, f"a sale in the last {quiet_for} minute(s)"
    return True, f"no session open and no sale for {quiet_for} minute(s)"
