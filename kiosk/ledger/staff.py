"""Staff members, PIN login with lockout, and role checks.

PINs are stored only as scrypt hashes (stdlib, memory-hard) of the PIN keyed with
the device's PIN key: HMAC-SHA256(key, PIN) goes into scrypt, and the key is a
32-byte secret in its own file beside the ledger (`[ledger] pin_key`, default
pin.key in the ledger's folder, created 0600 on first use), never in the ledger. A
copy of the ledger alone (a backup, a support upload) does not let anyone try PINs;
the card as a whole holds both, and a 4-8 digit PIN falls to brute force once the
key is known: see the README on what a stolen card gives away.

Hashes from before the key (`scrypt$...`) still log in, and are rewritten keyed on
the member's next successful login. A keyed hash names its key (a short id derived
from it), so a lost or replaced key is reported as such, not as a wrong PIN; a
technician then sets new PINs (`set_pin`). Repeated failures lock the member out for
a while; every login, failure, lockout and PIN change is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from pathlib import Path

from kiosk import files, i18n
from kiosk.i18n import N_
from kiosk.ledger import audit
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Staff, utc_now

ROLES = ("cashier", "supervisor", "technician")
ROLE_NAMES = {
    "cashier": N_("cashier"),
    "supervisor": N_("supervisor"),
    "technician": N_("technician"),
}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
PIN_RE = re.compile(r"[0-9]{4,8}")  # ASCII digits: what the PIN pad can type
CODE_RE = re.compile(r"[A-Za-z0-9]{1,16}")
KEYED = "hmac-scrypt"  # hmac-scrypt$<key id>$n$r$p$<salt>$<digest>
UNKEYED = "scrypt"  # scrypt$n$r$p$<salt>$<digest>, before the PIN key (still verified)
KEY_BYTES = 32
RESET_HINT = "a technician sets a new PIN with 'kiosk staff pin CODE'"


class AuthError(LedgerError):
    """A refused login: wrong PIN, locked out, unknown or inactive member."""


def key_path(ledger: Ledger) -> Path:
    return ledger.config.ledger.pin_key_path


def load_key(path: Path) -> bytes:
    """The device's PIN key (64 hex digits in a 0600 file), made on first use. An
    existing key file others can read is made 0600 first."""
    try:
        files.restrict(path)
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _new_key(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(
            i18n._("{path}: cannot read the PIN key: {reason}", path=path, reason=_reason(exc))
        ) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise LedgerError(
            i18n._(
                "{path}: not a PIN key ({digits} hex digits); move it away, then {hint}",
                path=path,
                digits=KEY_BYTES * 2,
                hint=RESET_HINT,
            )
        )
    return key


def _new_key(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_private(path, key.hex() + "\n", replace=False, owner_of_folder=True)
    except FileExistsError:
        return load_key(path)  # another process made it first: use theirs
    except OSError as exc:
        raise LedgerError(
            i18n._("{path}: cannot create the PIN key: {reason}", path=path, reason=_reason(exc))
        ) from None
    return key


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def key_id(key: bytes) -> str:
    """Names a key in the hashes it made (not the key: an HMAC of a fixed text)."""
    return hmac.new(key, b"kiosk pin key id", hashlib.sha256).hexdigest()[:8]


def hash_pin(pin: str, key: bytes) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(_keyed(pin, key), salt, _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"])
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"{KEYED}${key_id(key)}${n}${r}${p}${salt.hex()}${digest.hex()}"


def _keyed(pin: str, key: bytes) -> bytes:
    return hmac.new(key, pin.encode(), hashlib.sha256).digest()


def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=32)


def hashed_under(stored: str) -> str | None:
    """The key id a keyed hash was made with; None for an unkeyed (old) hash."""
    scheme, _, rest = stored.partition("$")
    return rest.partition("$")[0] if scheme == KEYED else None


def pin_matches(pin: str, stored: str, key: bytes) -> bool:
    """Keyed hashes need this key (a hash made under another key never matches);
    old unkeyed hashes are checked as they were made."""
    fields = stored.split("$")
    try:
        if fields[0] == KEYED and len(fields) == 7:
            if fields[1] != key_id(key):
                return False
            secret, (n, r, p, salt, digest) = _keyed(pin, key), fields[2:]
        elif fields[0] == UNKEYED and len(fields) == 6:
            secret, (n, r, p, salt, digest) = pin.encode(), fields[1:]
        else:
            return False
        actual = _scrypt(secret, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def add(ledger: Ledger, code: str, name: str, role: str, pin: str, by: str | None) -> Staff:
    if not CODE_RE.fullmatch(code):
        raise LedgerError(i18n._("staff code must be 1-16 letters or digits"))
    if role not in ROLES:
        raise LedgerError(i18n._("role must be one of {choices}", choices=", ".join(ROLES)))
    if not PIN_RE.fullmatch(pin):
        raise LedgerError(i18n._("PIN must be 4 to 8 digits"))
    if not name.strip():
        raise LedgerError(i18n._("staff name must not be empty"))
    pin_hash = hash_pin(pin, load_key(key_path(ledger)))  # slow: outside the write lock
    with ledger.transaction():
        if Staff.get_or_none(Staff.code == code) is not None:
            raise LedgerError(i18n._("staff code {code} is taken", code=code))
        member = Staff.create(
            code=code, name=name.strip(), role=role, pin_hash=pin_hash, created_at=utc_now()
        )
        audit.record("staff_add", by, code, "role", None, role)
        return member


def set_pin(ledger: Ledger, code: str, pin: str, by: str | None) -> None:
    """A new PIN for a member (forgotten, or set under a PIN key the device lost):
    hashed under the device's current key; failures and any lockout are cleared."""
    if not PIN_RE.fullmatch(pin):
        raise LedgerError(i18n._("PIN must be 4 to 8 digits"))
    pin_hash = hash_pin(pin, load_key(key_path(ledger)))
    with ledger.transaction():
        _get(code)
        audit.record("staff_pin", by, code, "pin")  # never the PIN or its hash
        Staff.update(pin_hash=pin_hash, failed_attempts=0, locked_until=None).where(
            Staff.code == code
        ).execute()


def set_role(ledger: Ledger, code: str, role: str, by: str | None) -> None:
    if role not in ROLES:
        raise LedgerError(i18n._("role must be one of {choices}", choices=", ".join(ROLES)))
    with ledger.transaction():
        member = _get(code)
        audit.record("staff_role", by, code, "role", member.role, role)
        Staff.update(role=role).where(Staff.code == code).execute()


def deactivate(ledger: Ledger, code: str, by: str | None) -> None:
    with ledger.transaction():
        _get(code)
        audit.record("staff_deactivate", by, code, "active", True, False)
        Staff.update(active=False).where(Staff.code == code).execute()


def _get(code: str) -> Staff:
    member = Staff.get_or_none(Staff.code == code)
    if member is None:
        raise LedgerError(i18n._("no staff member {code!r}", code=code))
    return member


def login(ledger: Ledger, pin: str, code: str | None = None) -> Staff:
    """Check a PIN, for one member (`code` from a badge) or against every active member.

    Failures count against the member (or, with PIN alone, against every active
    member, so guessing PINs at the pad locks the pad)."""
    cfg = ledger.config.staff
    now = utc_now()
    path = key_path(ledger)
    key = load_key(path)
    current = key_id(key)
    with ledger.transaction():
        members = [_get(code)] if code else list(Staff.select().where(Staff.active))
        if not members:
            raise AuthError(i18n._("no staff member is set up: add one with 'kiosk staff add'"))
        locked = [m for m in members if m.locked_until and m.locked_until > now]
        if code and locked:
            minutes = int((locked[0].locked_until - now).total_seconds() // 60) + 1
            raise AuthError(
                i18n._(
                    "{code} is locked out for {minutes} more minute(s)", code=code, minutes=minutes
                )
            )
        # PINs set under a key this device no longer has can never match: say so.
        stale = [m for m in members if hashed_under(m.pin_hash) not in (None, current)]
        if code and stale and members[0].active:
            raise AuthError(
                f"{code}'s PIN was set under another PIN key than {path} (lost or replaced): "
                + RESET_HINT.replace("CODE", code)
            )
        for member in members:
            if member in locked or member in stale or not member.active:
                continue
            if pin_matches(pin, member.pin_hash, key):
                update = {"failed_attempts": 0, "locked_until": None}
                if hashed_under(member.pin_hash) is None:  # from before the key: key it now
                    update["pin_hash"] = hash_pin(pin, key)
                    audit.record("staff_pin", None, member.code, "pin", detail="keyed")
                Staff.update(**update).where(Staff.code == member.code).execute()
                audit.record("login", member.code)
                return member
        for member in members:
            if member in locked or member in stale:
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
        raise AuthError(i18n._("{code} is not an active staff member", code=code))
    if stale:
        raise AuthError(
            i18n._(
                "wrong PIN ({count} staff PIN(s) were set under another PIN key than {path}: "
                "{hint})",
                count=len(stale),
                path=path,
                hint=RESET_HINT,
            )
        )
    raise AuthError(i18n._("wrong PIN"))


def role_name(role: str) -> i18n.Message:
    """A staff role as its reader calls it ("Kassierer")."""
    return i18n.Message(ROLE_NAMES.get(role, role))


def either(roles: tuple[str, ...]) -> i18n.Message:
    """ "cashier or supervisor", in the reader's language."""
    words = role_name(roles[0])
    for role in roles[1:]:
        words = i18n._("{first} or {second}", first=words, second=role_name(role))
    return words
