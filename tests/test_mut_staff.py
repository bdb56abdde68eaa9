"""Staff bookkeeping with the expected values written down: the hash format computed
with hashlib directly, each refusal word for word, every audit row. Written against
the survivors of `./dev.sh mutate staff`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from pathlib import Path

import pytest

from kiosk.config import parse
from kiosk.ledger import staff
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Audit, Staff, utc_now

KEY = bytes(range(32))


def audits(action: str) -> list[tuple]:
    rows = Audit.select().where(Audit.action == action).order_by(Audit.id)
    return [(a.staff, a.subject, a.field, a.old, a.new, a.detail) for a in rows]


def refuse(message: str, call, *args, **kwargs) -> None:
    with pytest.raises(LedgerError) as info:
        call(*args, **kwargs)
    assert str(info.value) == message


def test_the_hash_format_by_hand():
    key_id = hmac.new(KEY, b"kiosk pin key id", hashlib.sha256).hexdigest()[:8]
    assert staff.key_id(KEY) == key_id
    stored = staff.hash_pin("2468", KEY)
    scheme, kid, n, r, p, salt, digest = stored.split("$")
    assert (scheme, kid, n, r, p) == ("hmac-scrypt", key_id, "16384", "8", "1")
    assert len(bytes.fromhex(salt)) == 16
    keyed = hmac.new(KEY, b"2468", hashlib.sha256).digest()
    expected = hashlib.scrypt(keyed, salt=bytes.fromhex(salt), n=16384, r=8, p=1, dklen=32)
    assert digest == expected.hex()
    assert staff.hashed_under(stored) == key_id
    assert staff.pin_matches("2468", stored, KEY) is True
    assert staff.pin_matches("2469", stored, KEY) is False


def test_hashes_that_cannot_match():
    stored = staff.hash_pin("2468", KEY)
    fields = stored.split("$")
    other = secrets.token_bytes(32)
    assert staff.pin_matches("2468", stored, other) is False  # another key id
    assert staff.pin_matches("2468", "$".join(fields[:6]), KEY) is False  # a field short
    assert staff.pin_matches("2468", stored + "$x", KEY) is False
    assert staff.pin_matches("2468", "$".join([*fields[:5], "zz", fields[6]]), KEY) is False
    assert staff.pin_matches("2468", "md5$abc", KEY) is False
    assert staff.hashed_under("scrypt$16384$8$1$00$00") is None
    assert staff.hashed_under("junk") is None


def test_an_old_unkeyed_hash_by_hand():
    salt = bytes(16)
    digest = hashlib.scrypt(b"1357", salt=salt, n=1024, r=8, p=1, dklen=32)
    old = f"scrypt$1024$8$1${salt.hex()}${digest.hex()}"
    assert staff.pin_matches("1357", old, KEY) is True
    assert staff.pin_matches("1358", old, KEY) is False
    assert staff.pin_matches("1357", old.replace("scrypt$1024", "scrypt$1024$8"), KEY) is False


def test_key_file_refusals_word_for_word(tmp_path):
    bad = tmp_path / "pin.key"
    bad.write_text("abc\n")
    refuse(f"{bad}: not a PIN key (64 hex digits); move it away, then a technician sets a new "
           "PIN with 'kiosk staff pin CODE'", staff.load_key, bad)  # fmt: skip
    bad.write_text("zz" * 32 + "\n")
    refuse(f"{bad}: not a PIN key (64 hex digits); move it away, then a technician sets a new "
           "PIN with 'kiosk staff pin CODE'", staff.load_key, bad)  # fmt: skip
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(LedgerError) as info:
        staff.load_key(bad)
    assert str(info.value).startswith(f"{bad}: cannot read the PIN key: 'ascii' codec")
    folder = tmp_path / "dir.key"
    folder.mkdir()
    refuse(f"{folder}: cannot read the PIN key: Is a directory", staff.load_key, folder)
    fresh = tmp_path / "new" / "pin.key"
    key = staff.load_key(fresh)
    assert fresh.read_text() == key.hex() + "\n" and len(key) == 32
    assert staff.load_key(fresh) == key
    blocked = tmp_path / "file"
    blocked.write_text("")
    refuse(f"{blocked / 'pin.key'}: cannot read the PIN key: Not a directory",
           staff.load_key, blocked / "pin.key")  # fmt: skip


@pytest.fixture
def crew(ledger):
    staff.add(ledger, "S1", "  Sam  ", "supervisor", "1234", by="T0")
    staff.add(ledger, "C1", "Cat", "cashier", "5678", by=None)
    return ledger


def test_adding_staff_written_out(crew):
    sam = Staff.get_by_id("S1")
    assert (sam.name, sam.role, sam.active, sam.failed_attempts, sam.locked_until) == (
        "Sam", "supervisor", True, 0, None
    )  # fmt: skip
    assert audits("staff_add") == [
        ("T0", "S1", "role", None, "supervisor", None),
        (None, "C1", "role", None, "cashier", None),
    ]
    refuse("staff code C1 is taken", staff.add, crew, "C1", "Other", "cashier", "1111", None)
    refuse("staff code must be 1-16 letters or digits", staff.add, crew, "C-1", "X", "cashier",
           "1111", None)  # fmt: skip
    refuse("staff code must be 1-16 letters or digits", staff.add, crew, "A" * 17, "X",
           "cashier", "1111", None)  # fmt: skip
    refuse("role must be one of cashier, supervisor, technician", staff.add, crew, "X1", "X",
           "boss", "1111", None)  # fmt: skip
    for pin in ("123", "123456789", "12a4", ""):
        refuse("PIN must be 4 to 8 digits", staff.add, crew, "X1", "X", "cashier", pin, None)
    refuse("staff name must not be empty", staff.add, crew, "X1", "  ", "cashier", "1111", None)
    staff.add(crew, "A" * 16, "Long", "technician", "12345678", None)  # the limits are allowed


def test_pin_role_and_deactivation_written_out(crew):
    Staff.update(failed_attempts=3, locked_until=utc_now() + timedelta(minutes=5)).where(
        Staff.code == "C1"
    ).execute()
    staff.set_pin(crew, "C1", "8765", by="S1")
    cat = Staff.get_by_id("C1")
    assert (cat.failed_attempts, cat.locked_until) == (0, None)
    assert audits("staff_pin") == [("S1", "C1", "pin", None, None, None)]
    assert staff.login(crew, "8765").code == "C1"
    refuse("PIN must be 4 to 8 digits", staff.set_pin, crew, "C1", "87", "S1")
    refuse("no staff member 'ZZ'", staff.set_pin, crew, "ZZ", "8765", "S1")
    staff.set_role(crew, "C1", "supervisor", by="S1")
    assert Staff.get_by_id("C1").role == "supervisor"
    assert audits("staff_role") == [("S1", "C1", "role", "cashier", "supervisor", None)]
    refuse("role must be one of cashier, supervisor, technician", staff.set_role, crew, "C1",
           "boss", "S1")  # fmt: skip
    refuse("no staff member 'ZZ'", staff.set_role, crew, "ZZ", "cashier", "S1")
    staff.deactivate(crew, "C1", by="S1")
    assert Staff.get_by_id("C1").active is False
    assert audits("staff_deactivate") == [("S1", "C1", "active", "True", "False", None)]
    refuse("no staff member 'ZZ'", staff.deactivate, crew, "ZZ", "S1")


def test_logins_written_out(crew):
    assert staff.login(crew, "5678").code == "C1"
    assert staff.login(crew, "1234", code="S1").code == "S1"
    assert audits("login") == [
        ("C1", None, None, None, None, None),
        ("S1", None, None, None, None, None),
    ]
    with pytest.raises(staff.AuthError) as info:
        staff.login(crew, "0000", code="C1")
    assert str(info.value) == "wrong PIN"
    assert audits("login_failed") == [(None, "C1", None, None, None, None)]
    assert Staff.get_by_id("C1").failed_attempts == 1 and Staff.get_by_id("S1").failed_attempts == 0
    with pytest.raises(staff.AuthError):
        staff.login(crew, "0000")
    assert audits("login_failed")[-1] == (None, None, None, None, None, None)
    assert (Staff.get_by_id("C1").failed_attempts, Staff.get_by_id("S1").failed_attempts) == (2, 1)
    staff.login(crew, "5678", code="C1")
    assert Staff.get_by_id("C1").failed_attempts == 0
    refuse("no staff member 'ZZ'", staff.login, crew, "5678", code="ZZ")
    staff.deactivate(crew, "C1", by="S1")
    with pytest.raises(staff.AuthError) as info:
        staff.login(crew, "5678", code="C1")
    assert str(info.value) == "C1 is not an active staff member"
    with pytest.raises(staff.AuthError) as info:
        staff.login(crew, "5678")  # inactive members are not tried with PIN alone
    assert str(info.value) == "wrong PIN"


def test_lockout_minutes_and_attempts_follow_the_config(tmp_path):
    config = parse(
        f'[device]\nid = "till-01"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
        "[staff]\nmax_pin_attempts = 2\nlockout_minutes = 30\n"
    )
    with Ledger.open(config) as ledger:
        staff.add(ledger, "C1", "Cat", "cashier", "5678", by=None)
        with pytest.raises(staff.AuthError):
            staff.login(ledger, "0000", code="C1")
        assert Staff.get_by_id("C1").locked_until is None
        with pytest.raises(staff.AuthError):
            staff.login(ledger, "0000", code="C1")  # the second: locked for 30 minutes
        cat = Staff.get_by_id("C1")
        left = cat.locked_until - utc_now()
        assert timedelta(minutes=29) < left <= timedelta(minutes=30)
        assert cat.failed_attempts == 0
        assert audits("lockout") == [(None, "C1", None, None, None, "2 failed PINs")]
        with pytest.raises(staff.AuthError) as info:
            staff.login(ledger, "5678", code="C1")
        assert str(info.value) == "C1 is locked out for 30 more minute(s)"
        Staff.update(locked_until=utc_now() + timedelta(seconds=61)).where(
            Staff.code == "C1"
        ).execute()
        with pytest.raises(staff.AuthError) as info:
            staff.login(ledger, "5678", code="C1")
        assert str(info.value) == "C1 is locked out for 2 more minute(s)"
        Staff.update(locked_until=utc_now() - timedelta(seconds=1)).where(
            Staff.code == "C1"
        ).execute()
        assert staff.login(ledger, "5678", code="C1").code == "C1"  # the lock has run out
        assert Staff.get_by_id("C1").locked_until is None


def test_nobody_set_up(ledger):
    with pytest.raises(staff.AuthError) as info:
        staff.login(ledger, "1234")
    assert str(info.value) == "no staff member is set up: add one with 'kiosk staff add'"


def test_pins_under_a_lost_key_word_for_word(crew):
    path = staff.key_path(crew)
    path.unlink()
    with pytest.raises(staff.AuthError) as info:
        staff.login(crew, "5678", code="C1")
    assert str(info.value) == (
        f"C1's PIN was set under another PIN key than {path} (lost or replaced): a technician "
        "sets a new PIN with 'kiosk staff pin C1'"
    )
    with pytest.raises(staff.AuthError) as info:
        staff.login(crew, "5678")
    assert str(info.value) == (
        f"wrong PIN (2 staff PIN(s) were set under another PIN key than {path}: a technician "
        "sets a new PIN with 'kiosk staff pin CODE')"
    )
    assert Staff.get_by_id("C1").failed_attempts == 0  # a lost key is no guess
    staff.set_pin(crew, "C1", "5678", by=None)
    assert staff.login(crew, "5678").code == "C1"


def test_an_old_hash_is_keyed_on_login_and_audited(crew):
    salt = bytes(16)
    digest = hashlib.scrypt(b"5678", salt=salt, n=1024, r=8, p=1, dklen=32)
    Staff.update(pin_hash=f"scrypt$1024$8$1${salt.hex()}${digest.hex()}").where(
        Staff.code == "C1"
    ).execute()
    assert staff.login(crew, "5678").code == "C1"
    assert audits("staff_pin") == [(None, "C1", "pin", None, None, "keyed")]
    key = staff.load_key(staff.key_path(crew))
    assert staff.hashed_under(Staff.get_by_id("C1").pin_hash) == staff.key_id(key)


def test_other_schemes_never_match():
    salt = bytes(16)
    digest = hashlib.scrypt(b"1357", salt=salt, n=1024, r=8, p=1, dklen=32).hex()
    assert staff.pin_matches("1357", f"md5$1024$8$1${salt.hex()}${digest}", KEY) is False
    keyed = staff.hash_pin("1357", KEY)
    assert staff.pin_matches("1357", "other" + keyed[len("hmac-scrypt") :], KEY) is False


def test_a_locked_member_first_does_not_stop_the_others(crew):
    Staff.update(locked_until=utc_now() + timedelta(minutes=5)).where(Staff.code == "S1").execute()
    assert staff.login(crew, "5678").code == "C1"  # S1 (locked) is tried first
    staff.set_role(crew, "C1", "technician", by="S1")
    assert (Staff.get_by_id("S1").role, Staff.get_by_id("C1").role) == ("supervisor", "technician")
    staff.deactivate(crew, "C1", by="S1")
    with pytest.raises(staff.AuthError):
        staff.login(crew, "0000")
    assert Staff.get_by_id("C1").failed_attempts == 0  # inactive members are not counted


def test_a_key_in_a_new_nested_folder_and_one_that_cannot_be_made(tmp_path):
    nested = tmp_path / "a" / "b" / "pin.key"
    assert len(staff.load_key(nested)) == 32 and nested.exists()
    with pytest.raises(LedgerError) as info:
        staff.load_key(Path("/proc/self/kiosk-pin.key"))
    assert str(info.value).startswith("/proc/self/kiosk-pin.key: cannot create the PIN key: ")
