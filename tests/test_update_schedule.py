"""The quiet moment for the switch to an installed update (kiosk.update.schedule)."""

from __future__ import annotations

import gzip
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kiosk.update import schedule
from kiosk.update.settings import UpdateConfig

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"


def test_quiet_when_no_session_and_no_recent_sale():
    settings = UpdateConfig(idle_minutes=2)
    assert schedule.quiet_moment(NOW, settings, NOW - timedelta(minutes=3), "attract", 15)[0]
    assert schedule.quiet_moment(NOW, settings, None, None, 15)[0]
    busy, why = schedule.quiet_moment(NOW, settings, NOW - timedelta(seconds=30), None, 15)
    assert not busy and "sale" in why
    busy, why = schedule.quiet_moment(NOW, settings, None, "scanning", 15)
    assert not busy and "session is open" in why


def test_configured_hour_switches_whatever_the_kiosk_does():
    settings = UpdateConfig(switch_hour=3)
    assert schedule.quiet_moment(NOW, settings, NOW, "paying", local_hour=3)[0]
    assert not schedule.quiet_moment(NOW, settings, NOW, "paying", local_hour=4)[0]


def test_last_sale_from_a_ledger(tmp_path):
    ledger = tmp_path / "ledger.db"
    with gzip.open(FIXTURES / "ledger-schema5.db.gz") as source, open(ledger, "wb") as out:
        shutil.copyfileobj(source, out)
    last = schedule.last_sale(ledger)
    assert last is not None and last.tzinfo is not None
    assert schedule.last_sale(tmp_path / "missing.db") is None


def test_session_file_fresh_or_stale(tmp_path):
    path = tmp_path / schedule.SESSION_FILE
    assert schedule.session(tmp_path, NOW) is None
    path.write_text("scanning\n")
    stamp = (NOW - timedelta(minutes=1)).timestamp()
    os.utime(path, (stamp, stamp))
    assert schedule.session(tmp_path, NOW) == "scanning"
    stamp = (NOW - timedelta(hours=2)).timestamp()
    os.utime(path, (stamp, stamp))
    assert schedule.session(tmp_path, NOW) is None  # left by a crash or a power cut


def test_reading_as_root_leaves_the_ledger_the_apps(tmp_path):
    """The switch timer runs as root: SQLite companions it makes while reading the WAL
    ledger must stay openable by the kiosk user who owns the ledger."""
    import sqlite3  # noqa: PLC0415

    if os.geteuid() != 0:
        return  # only root can make files for another user; the image runs this as root
    ledger = tmp_path / "ledger.db"
    db = sqlite3.connect(ledger)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("CREATE TABLE txn (id INTEGER PRIMARY KEY, ts TEXT)")
    db.execute("INSERT INTO txn (ts) VALUES ('2026-11-24T10:00:00.000000Z')")
    db.commit()
    db.close()
    for path in tmp_path.iterdir():
        os.chown(path, 65534, 65534)
    assert schedule.last_sale(ledger) == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    for path in tmp_path.iterdir():
        assert path.stat().st_uid == 65534, path
