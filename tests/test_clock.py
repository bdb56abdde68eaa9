"""Clock-sync detection: systemd-timesyncd's flag file and the kernel's NTP state."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kiosk import clock
from kiosk.ledger import stock


@pytest.fixture(autouse=True)
def fresh_cache():
    clock._synced.clear()
    yield
    clock._synced.clear()


def test_the_timesyncd_flag_file_says_synchronised(tmp_path):
    flag = tmp_path / "run" / "systemd" / "timesync" / "synchronized"
    assert clock.synchronized(flag, kernel=False) is False
    assert clock.mark(flag, kernel=False) == "unsynced"
    flag.parent.mkdir(parents=True)
    flag.touch()  # what timesyncd does on its first synchronisation since boot
    assert clock.synchronized(flag, kernel=False) is True
    assert clock.mark(flag, kernel=False) == "synced"
    flag.unlink()  # once synchronised, it stays so for the process (until reboot)
    assert clock.synchronized(flag, kernel=False) is True


def test_the_flag_path_comes_from_the_environment(tmp_path, monkeypatch):
    flag = tmp_path / "synchronized"
    monkeypatch.setenv(clock.FLAG_ENV, str(flag))
    assert clock.flag_path() == flag
    assert clock.synchronized(kernel=False) is False
    flag.touch()
    assert clock.synchronized(kernel=False) is True
    monkeypatch.delenv(clock.FLAG_ENV)
    assert clock.flag_path() == Path("/run/systemd/timesync/synchronized")


def test_the_kernel_ntp_state_through_adjtimex():
    state = clock.kernel_state()
    assert state is not None, "adjtimex should answer on Linux"
    result, status = state
    assert 0 <= result <= 5  # TIME_OK .. TIME_ERROR
    # The clock's state as the kernel keeps it, read a second way: the same bits.
    assert clock.kernel_state()[1] & clock.STA_UNSYNC == status & clock.STA_UNSYNC
    assert clock.kernel_synchronized(state) == (
        result != clock.TIME_ERROR and not status & clock.STA_UNSYNC
    )


@pytest.mark.parametrize(
    ("state", "synced"),
    [
        ((0, 0x0001), True),  # TIME_OK, STA_PLL: an NTP daemon disciplines the clock
        ((1, 0x0011), True),  # TIME_INS (leap second pending), still synchronised
        ((5, 0x0040), False),  # TIME_ERROR, STA_UNSYNC: as after boot with no network
        ((0, 0x0040), False),  # STA_UNSYNC alone
        ((5, 0x0000), False),  # TIME_ERROR alone
        (None, False),  # no adjtimex
    ],
)
def test_reading_the_kernel_state(state, synced):
    assert clock.kernel_synchronized(state) is synced


def test_stock_events_carry_the_clock_mark(shop, tmp_path, monkeypatch):
    """Events made before sync are marked; after the flag appears, they are not."""
    flag = tmp_path / "synchronized"
    monkeypatch.setenv(clock.FLAG_ENV, str(flag))
    monkeypatch.setattr(clock, "kernel_state", lambda: (5, clock.STA_UNSYNC))
    stock.receive(shop, [stock.ReceiveLine("PEN", 5)], None)
    flag.touch()
    stock.count(shop, {"PEN": 4}, None)
    with sqlite3.connect(shop.path) as db:
        payloads = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]
    assert [p["clock"] for p in payloads[-2:]] == ["unsynced", "synced"]


def test_the_controller_parses_the_mark():
    from kiosk.mqtt import topics  # noqa: PLC0415

    base = {
        "v": 1, "device": "till-01", "seq": 1, "id": "till-01:1", "kind": "sale",
        "txn": "till-01-000001", "ts": "2026-11-01T12:00:00.000000Z", "moves": [],
    }  # fmt: skip
    assert topics.parse_stock_event(topics.encode(base)).clock is None  # older firmware
    for mark in ("synced", "unsynced"):
        assert topics.parse_stock_event(topics.encode({**base, "clock": mark})).clock == mark
    with pytest.raises(topics.PayloadError, match="clock"):
        topics.parse_stock_event(topics.encode({**base, "clock": "maybe"}))
