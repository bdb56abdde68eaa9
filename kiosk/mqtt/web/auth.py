"""Web users, their passwords, sessions, lockout and cross-site request forgery.

* Passwords: hashlib.scrypt (the standard library's memory-hard KDF; no extra
  package), 16 MiB per check, stored as ``scrypt$n$r$p$salt$hash``. Staff PINs
  (the ledger's) are never web passwords: web users are their own table.
* Sessions: a random token (32 bytes) in an HttpOnly, SameSite=Strict cookie (Secure
  over HTTPS), kept in this process's memory with its CSRF token and idle deadline;
  logout and a restart end them.
* Lockout: ``[controller] web_lockout_attempts`` failed logins in a row lock the user
  for ``web_lockout_minutes`` (the right password is refused too while locked).
* CSRF: every unsafe request (POST, PUT, PATCH, DELETE) must carry the session's
  token (form field ``csrf_token`` or header ``X-CSRF-Token``); the login form, before
  a session exists, the token of its own cookie (double submit). A cross-site page can
  neither read the token nor send the SameSite=Strict cookies. A request whose Origin
  names another host is refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kiosk.mqtt import store

ROLES = ("manager", "attendant")  # managers: everything; attendants: alerts and kiosks
SESSION_COOKIE = "kiosk_session"
LOGIN_CSRF_COOKIE = "kiosk_login_csrf"
_N, _R, _P = 2**14, 8, 1
MAX_PASSWORD = 1024  # characters; a longer one is refused before hashing
MIN_PASSWORD = 8
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}"


class AuthError(ValueError):
    """A refused login or user change, in one line for the page or the CLI."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        mine = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(bytes.fromhex(digest)), maxmem=256 * 1024 * 1024,
        )  # fmt: skip
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(mine, bytes.fromhex(digest))


def _stamp(moment: datetime) -> str:
    return store.ts(moment)


def add_user(name: str, password: str, role: str = "manager", now: datetime | None = None) -> None:
    """Create a web user, or set a new password and role for one (unlocks it)."""
    import re  # noqa: PLC0415

    if not re.fullmatch(NAME_PATTERN, name):
        raise AuthError("a user name is 1-32 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AuthError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    now = now or datetime.now(UTC)
    hashed = hash_password(password)
    user = store.WebUser
    with store.store_db.atomic():
        updated = (
            user.update(password_hash=hashed, role=role, failed_attempts=0, locked_until=None)
            .where(user.name == name)
            .execute()
        )
        if not updated:
            user.create(
                name=name,
                password_hash=hashed,
                role=role,
                failed_attempts=0,
                locked_until=None,
                created_at=_stamp(now),
            )


_DUMMY_HASH = None


def authenticate(
    name: str, password: str, attempts: int, lock_minutes: float, now: datetime | None = None
) -> tuple[str, str]:
    """(name, role) of the user whose password this is, or AuthError saying why not.
    Failures count towards the lockout; a success resets the count."""
    global _DUMMY_HASH  # noqa: PLW0603
    now = now or datetime.now(UTC)
    user = store.WebUser
    row = user.get_or_none(user.name == name[:64]) if name else None
    if row is None or len(password) > MAX_PASSWORD:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password("not a password")
        check_password(password[:MAX_PASSWORD], _DUMMY_HASH)  # the same time as a real check
        raise AuthError("wrong user name or password")
    if row.locked_until and row.locked_until > _stamp(now):
        raise AuthError(f"too many failed logins: {name} is locked until {row.locked_until[:19]}Z")
    if not check_password(password, row.password_hash):
        failed = (row.failed_attempts or 0) + 1
        locked = None
        if failed >= attempts:
            locked, failed = _stamp(now + timedelta(minutes=lock_minutes)), 0
        user.update(failed_attempts=failed, locked_until=locked).where(
            user.name == row.name
        ).execute()
        if locked:
            raise AuthError(f"too many failed logins: {name} is locked until {locked[:19]}Z")
        raise AuthError("wrong user name or password")
    if row.failed_attempts or row.locked_until:
        user.update(failed_attempts=0, locked_until=None).where(user.name == row.name).execute()
    return row.name, row.role


@dataclass
class Session:
    user: str
    role: str
    csrf: str
    expires: float
    token: str = field(repr=False, default="")


class Sessions:
    """Logged-in sessions in memory: token -> Session, idle timeout."""

    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self, user: str, role: str) -> Session:
        token = secrets.token_urlsafe(32)
        session = Session(user, role, secrets.token_urlsafe(32), time.monotonic() + self.idle_s)
        session.token = token
        with self._lock:
            now = time.monotonic()
            for key in [k for k, s in self._sessions.items() if s.expires < now]:
                del self._sessions[key]
            self._sessions[token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            now = time.monotonic()
            if session.expires < now:
                del self._sessions[token]
                return None
            session.expires = now + self.idle_s
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)


def same_token(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())
