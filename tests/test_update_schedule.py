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


def test_the_app_keeps_the_session_file_the_switch_reads(shop, tmp_path):
    """A real checkout with the app's SessionWriter: a customer's scan opens the session
    (no switch now), the paid sale closes it (quiet again); a session kept open longer
    than the file's staleness is written again, so it still reads as open."""
    from kiosk.checkout.session import Checkout  # noqa: PLC0415
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter  # noqa: PLC0415
    from kiosk.ledger import stock  # noqa: PLC0415

    stock.receive(shop, [stock.ReceiveLine("PEN", 5)], "S1")
    ticks = [0.0]
    writer = schedule.SessionWriter(tmp_path, clock=lambda: ticks[0])
    co = Checkout(shop, MemoryPrinter(), MemoryDrawer())
    writer.note(co.state.value)
    co.subscribe(writer.on_event)
    now = datetime.now(UTC)
    assert schedule.session(tmp_path, now) == "attract"
    co.scan("4006381333931")
    assert schedule.session(tmp_path, now) == "scanning"
    settings = UpdateConfig(idle_minutes=0)
    assert not schedule.quiet_moment(now, settings, None, schedule.session(tmp_path, now))[0]
    old = (now - timedelta(minutes=40)).timestamp()
    os.utime(tmp_path / schedule.SESSION_FILE, (old, old))
    ticks[0] += writer.REFRESH_S
    co.scan("4006381333931")  # the same word, a minute later: written again
    assert schedule.session(tmp_path, now) == "scanning"
    co.cancel()
    assert schedule.session(tmp_path, now) == "attract"
    assert schedule.quiet_moment(now, settings, None, schedule.session(tmp_path, now))[0]


def test_a_session_file_that_cannot_be_written_never_stops_selling(tmp_path):
    writer = schedule.SessionWriter(tmp_path / "missing-folder")
    writer.note("scanning")  # logged, not raised
    assert writer.word is None
