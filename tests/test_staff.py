import hashlib
import hmac
import secrets
import sqlite3
import stat
from datetime import timedelta

import pytest

from kiosk.ledger import staff
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Audit, Staff, utc_now
from kiosk.ledger.verify import verify


def test_pins_are_stored_only_as_keyed_scrypt_hashes(shop):
    key = staff.load_key(staff.key_path(shop))
    member = Staff.get_by_id("S1")
    assert member.pin_hash.startswith(f"hmac-scrypt${staff.key_id(key)}$16384$8$1$")
    assert "1234" not in member.pin_hash.split("$")[-1]
    assert staff.pin_matches("1234", member.pin_hash, key)
    assert not staff.pin_matches("1235", member.pin_hash, key)
    assert staff.hash_pin("1234", key) != member.pin_hash  # salted
    other = secrets.token_bytes(32)
    assert not staff.pin_matches("1234", member.pin_hash, other)  # the key is needed
    # Same PIN, same salt, another key: another digest (the key goes into scrypt).
    fields = member.pin_hash.split("$")
    salt = bytes.fromhex(fields[5])
    forged = hashlib.scrypt(
        hmac.new(other, b"1234", hashlib.sha256).digest(), salt=salt, n=2**14, r=8, p=1, dklen=32
    )
    assert forged.hex() != fields[6]


def test_the_pin_key_is_a_private_file_beside_the_ledger_not_in_it(shop):
    path = staff.key_path(shop)
    assert path == shop.path.parent / "pin.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = staff.load_key(path)
    assert len(key) == 32 and path.read_text() == key.hex() + "\n"
    data = b"".join(p.read_bytes() for p in shop.path.parent.glob(shop.path.name + "*"))
    assert key.hex().encode() not in data and key not in data
    path.chmod(0o644)  # an older copy or a careless restore: corrected when read
    assert staff.load_key(path) == key and stat.S_IMODE(path.stat().st_mode) == 0o600


def old_hash(pin: str) -> str:
    """A PIN hash as the previous version wrote it: scrypt of the bare PIN, no key."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def test_pins_from_before_the_key_log_in_and_are_keyed_on_success(config, tmp_path):
    """A ledger the previous version made (unkeyed hashes, no key file) opened by this
    one: the old PIN still works and is rewritten keyed; a wrong one changes nothing."""
    with Ledger.open(config) as ledger:
        pass  # the schema, as the previous version made it
    with sqlite3.connect(config.ledger.path) as conn:
        for code, role, pin in (("S1", "supervisor", "1234"), ("C1", "cashier", "5678")):
            conn.execute(
                "INSERT INTO staff (code, name, role, pin_hash, active, failed_attempts, "
                "created_at) VALUES (?, ?, ?, ?, 1, 0, '2026-01-01T00:00:00.000000Z')",
                (code, code, role, old_hash(pin)),
            )
    conn.close()
    assert not config.ledger.pin_key_path.exists()
    with Ledger.open(config) as ledger:
        with pytest.raises(staff.AuthError, match="wrong PIN"):
            staff.login(ledger, "0000", code="S1")
        assert Staff.get_by_id("S1").pin_hash.startswith("scrypt$")
        assert staff.login(ledger, "1234", code="S1").code == "S1"
        key = staff.load_key(config.ledger.pin_key_path)
        upgraded = Staff.get_by_id("S1").pin_hash
        assert staff.hashed_under(upgraded) == staff.key_id(key)
        assert staff.pin_matches("1234", upgraded, key)
        assert Staff.get_by_id("C1").pin_hash.startswith("scrypt$")  # not logged in yet
        assert staff.login(ledger, "5678").code == "C1"  # PIN alone finds old hashes too
        assert staff.hashed_under(Staff.get_by_id("C1").pin_hash) == staff.key_id(key)
        assert staff.login(ledger, "1234").code == "S1"  # and the keyed one next time
        assert Audit.select().where(Audit.action == "staff_pin").count() == 2
        assert not verify(ledger)


def test_a_lost_pin_key_is_named_and_a_technician_sets_new_pins(shop):
    path = staff.key_path(shop)
    path.unlink()  # lost (a restored ledger without its key, a new data partition)
    with pytest.raises(staff.AuthError, match="S1's PIN was set under another PIN key"):
        staff.login(shop, "1234", code="S1")
    assert Staff.get_by_id("S1").failed_attempts == 0  # not counted as a guess
    with pytest.raises(
        staff.AuthError,
        match=r"wrong PIN \(2 staff PIN\(s\) were set under another PIN key .*'kiosk staff pin",
    ):
        staff.login(shop, "1234")
    assert path.exists()  # a new key, for the PINs set from now on
    staff.set_pin(shop, "S1", "4321", by="T1")
    assert staff.login(shop, "4321", code="S1").code == "S1"
    row = Audit.get(Audit.action == "staff_pin")
    assert (row.staff, row.subject, row.old, row.new) == ("T1", "S1", None, None)
    with pytest.raises(LedgerError, match="PIN must be 4 to 8 digits"):
        staff.set_pin(shop, "S1", "12", by="T1")
    with pytest.raises(LedgerError, match="no staff member"):
        staff.set_pin(shop, "ZZ", "1234", by="T1")


def test_a_broken_pin_key_is_one_clear_error(shop):
    staff.key_path(shop).write_text("not hex\n")
    with pytest.raises(LedgerError, match="not a PIN key .64 hex digits"):
        staff.login(shop, "1234")


def test_login_by_pin_alone_or_with_a_badge(shop):
    assert staff.login(shop, "5678").code == "C1"
    assert staff.login(shop, "1234", code="S1").role == "supervisor"
    with pytest.raises(staff.AuthError, match="wrong PIN"):
        staff.login(shop, "5678", code="S1")
    assert Audit.select().where(Audit.action == "login").count() == 2
    assert Audit.select().where(Audit.action == "login_failed").count() == 1


def test_lockout_after_repeated_failures(shop):
    for _ in range(5):
        with pytest.raises(staff.AuthError, match="wrong PIN"):
            staff.login(shop, "0000", code="C1")
    with pytest.raises(staff.AuthError, match="locked out for 5 more minute"):
        staff.login(shop, "5678", code="C1")  # even the right PIN
    assert Audit.get(Audit.action == "lockout").subject == "C1"
    Staff.update(locked_until=utc_now() - timedelta(seconds=1)).where(Staff.code == "C1").execute()
    assert staff.login(shop, "5678", code="C1").code == "C1"


def test_failed_attempts_reset_on_success(shop):
    for _ in range(4):
        with pytest.raises(staff.AuthError):
            staff.login(shop, "0000", code="C1")
    staff.login(shop, "5678", code="C1")
    assert Staff.get_by_id("C1").failed_attempts == 0


def test_inactive_members_cannot_log_in(shop):
    staff.deactivate(shop, "C1", by="S1")
    with pytest.raises(staff.AuthError):
        staff.login(shop, "5678")
    with pytest.raises(staff.AuthError, match="not an active"):
        staff.login(shop, "5678", code="C1")


def test_add_validation_and_role_changes(shop):
    for args, message in [
        (("X1", "X", "janitor", "1234"), "role must be"),
        (("X1", "X", "cashier", "12"), "PIN must be 4 to 8 digits"),
        (("X1", "X", "cashier", "12ab"), "PIN must be"),
        (("S1", "X", "cashier", "1234"), "is taken"),
        (("bad code!", "X", "cashier", "1234"), "staff code"),
    ]:
        with pytest.raises(LedgerError, match=message):
            staff.add(shop, *args, by="S1")
    staff.set_role(shop, "C1", "supervisor", by="S1")
    row = Audit.get(Audit.action == "staff_role")
    assert (row.old, row.new, row.staff) == ("cashier", "supervisor", "S1")


def test_no_staff_at_all(ledger):
    with pytest.raises(staff.AuthError, match="no staff member is set up"):
        staff.login(ledger, "1234")
