"""Staff members, PIN login with lockout, and role checks.

PINs are stored only as scrypt hashes (stdlib, memory-hard): a stolen SD card does
not give the PINs away cheaply. Repeated failures lock the member out for a while;
every login, failure and lockout is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from kiosk.ledger import audit
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Staff, utc_now

ROLES = ("cashier", "supervisor", "technician")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
PIN_RE = re.compile(r"\d{4,8}")
CODE_RE = re.compile(r"[A-Za-z0-9]{1,16}")


class AuthError(LedgerError):
    """A refused login: wrong PIN, locked out, unknown or inactive member."""


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    actual = hashlib.scrypt(
        pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(actual.hex(), digest)


def add(ledger: Ledger, code: str, name: str, role: str, pin: str, by: str | None) -> Staff:
    if not CODE_RE.fullmatch(code):
        raise LedgerError("staff code must be 1-16 letters or digits")
    if role not in ROLES:
        raise LedgerError(f"role must be one of {', '.join(ROLES)}")
    if not PIN_RE.fullmatch(pin):
        raise LedgerError("PIN must be 4 to 8 digits")
    if not name.strip():
        raise LedgerError("staff name must not be empty")
    with ledger.db.atomic():
        if Staff.get_or_none(Staff.code == code) is not None:
            raise LedgerError(f"staff code {code} is taken")
        member = Staff.create(
            code=code, name=name.strip(), role=role, pin_hash=hash_pin(pin), created_at=utc_now()
        )
        audit.record("staff_add", by, code, "role", None, role)
        return member


def set_role(ledger: Ledger, code: str, role: str, by: str | None) -> None:
    if role not in ROLES:
        raise LedgerError(f"role must be one of {', '.join(ROLES)}")
    with ledger.db.atomic():
        member = _get(code)
        audit.record("staff_role", by, code, "role", member.role, role)
        Staff.update(role=role).where(Staff.code == code).execute()


def deactivate(ledger: Ledger, code: str, by: str | None) -> None:
    with ledger.db.atomic():
        _get(code)
        audit.record("staff_deactivate", by, code, "active", True, False)
        Staff.update(active=False).where(Staff.code == code).execute()


def _get(code: str) -> Staff:
    member = Staff.get_or_none(Staff.code == code)
    if member is None:
        raise LedgerError(f"no staff member {code!r}")
    return member


def login(ledger: Ledger, pin: str, code: str | None = None) -> Staff:
    """Check a PIN, for one member (`code` from a badge) or against every active member.

    Failures count against the member (or, with PIN alone, against every active
    member, so guessing PINs at the pad locks the pad)."""
    cfg = ledger.config.staff
    now = utc_now()
    with ledger.db.atomic():
        members = [_get(code)] if code else list(Staff.select().where(Staff.active))
        if not members:
            raise AuthError("no staff member is set up: add one with 'kiosk staff add'")
        locked = [m for m in members if m.locked_until and m.locked_until > now]
        if code and locked:
            minutes = int((locked[0].locked_until - now).total_seconds() // 60) + 1
            raise AuthError(f"{code} is locked out for {minutes} more minute(s)")
        for member in members:
            if member not in locked and member.active and pin_matches(pin, member.pin_hash):
                Staff.update(failed_attempts=0, locked_until=None).where(
                    Staff.code == member.code
                ).execute()
                audit.record("login", member.code)
                return member
        for member in members:
            if member in locked:
                continue
            attempts = member.failed_attempts + 1
            update = {"failed_attempts": attempts}
            if attempts >= cfg.max_pin_attempts:
                update = {
                    "failed_attempts": 0,
                    "locked_until": now + timedelta(minutes=cfg.lockout_minutes),
                }
                audit.record("lockout", None, member.code, detail=f"{attempts} failed PINs")
            Staff.update(**update).where(Staff.code == member.code).execute()
        audit.record("login_failed", None, code)
    if code and members[0].active is False:
        raise AuthError(f"{code} is not an active staff member")
    raise AuthError("wrong PIN")
