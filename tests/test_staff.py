from datetime import timedelta

import pytest

from kiosk.ledger import staff
from kiosk.ledger.core import LedgerError
from kiosk.ledger.models import Audit, Staff, utc_now


def test_pins_are_stored_only_as_scrypt_hashes(shop):
    member = Staff.get_by_id("S1")
    assert member.pin_hash.startswith("scrypt$16384$8$1$")
    assert "1234" not in member.pin_hash.split("$")[-1]
    assert staff.pin_matches("1234", member.pin_hash)
    assert not staff.pin_matches("1235", member.pin_hash)
    assert staff.hash_pin("1234") != member.pin_hash  # salted


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
