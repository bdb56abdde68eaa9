"""Is this machine's clock synchronised? A Pi has no real-time clock: after a power cut
with no network its clock can be hours or years off until NTP sets it.

Synchronised means either
  * systemd-timesyncd has synchronised since boot: it creates
    /run/systemd/timesync/synchronized (KIOSK_TIMESYNC_FLAG names another path), or
  * the kernel's NTP state says so (adjtimex: no TIME_ERROR, STA_UNSYNC clear), which
    any NTP daemon that disciplines the clock (timesyncd, chrony, ntpd) maintains.

Stock events made while it is not are marked `"clock": "unsynced"` (see
kiosk/ledger/posting.py); the controller then trusts their seq, not their time.
A positive answer is kept for the process's life (a synchronised clock stays so
until reboot); a negative one is asked again on every call (a stat and a syscall).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
FLAG_ENV = "KIOSK_TIMESYNC_FLAG"
TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised
STA_UNSYNC = 0x0040  # status bit: clock unsynchronised

_synced: set[str] = set()


class _Timex(ctypes.Structure):
    """struct timex from <sys/timex.h> (Linux, any word size)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, found once: find_library runs `ldconfig -p` (a process) every
    call, which cost every sale a fork while the clock was not synchronised."""
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def kernel_state() -> tuple[int, int] | None:
    """(adjtimex's return value, its status bits), read-only (modes = 0); None where
    there is no adjtimex (not Linux, or no C library found)."""
    try:
        libc = _libc()
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    buf = _Timex()
    result = adjtimex(ctypes.byref(buf))
    if result < 0:
        return None
    return result, buf.status


def kernel_synchronized(state: tuple[int, int] | None) -> bool:
    if state is None:
        return False
    result, status = state
    return result != TIME_ERROR and not status & STA_UNSYNC


def flag_path() -> Path:
    return Path(os.environ.get(FLAG_ENV) or TIMESYNC_FLAG)


def synchronized(flag: Path | None = None, kernel: bool = True) -> bool:
    """True once the clock is known to be synchronised (see the module's text)."""
    flag = flag or flag_path()
    key = f"{flag}|{kernel}"
    if key in _synced:
        return True
    synced = flag.exists() or (kernel and kernel_synchronized(kernel_state()))
    if synced:
        _synced.add(key)
    return synced


def mark(flag: Path | None = None, kernel: bool = True) -> str:
    """The clock mark a stock event carries: "synced" or "unsynced"."""
    return "synced" if synchronized(flag, kernel) else "unsynced"
