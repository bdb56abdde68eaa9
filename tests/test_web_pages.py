"""The web view without a browser: its queries on a real store, the alert contract's
bounds against hostile messages, passwords and lockout."""

from __future__ import annotations

import contextlib
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config import parse
from kiosk.mqtt import reorder, store, topics
from kiosk.mqtt.web import auth, stock
from kiosk.mqtt.web.live import Live
from kiosk.mqtt.web.relay import Relay

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path):
    opened = store.open_store(str(tmp_path / "controller.db"))
    yield opened
    opened.close()


def event(device: str, seq: int, kind: str, moves, at: datetime) -> topics.StockEvent:
    return topics.StockEvent(device, seq, at, kind, f"R{seq}", tuple(moves), clock="synced")


def fill(items: int, master: bool, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    skus = [f"S{n:04d}" for n in range(items)]
    if master:
        store.MasterItem.insert_many(
            [
                {"sku": s, "name": f"Item {s} {rng.choice(['tea', 'soap'])}", "price": "1.00",
                 "tax_code": "A", "case_pack": rng.choice([1, 6, 12]), "version": 1,
                 "digest": "", "barcodes": f"{4000000000000 + n}*1",
                 "reorder_point": rng.choice([None, None, 5]),
                 "safety_stock": rng.choice([None, 2]), "lead_time_days": rng.choice([None, 1])}
                for n, s in enumerate(skus)
            ]
        ).execute()  # fmt: skip
    else:
        store.SkuInfo.insert_many(
            [{"sku": s, "name": f"Item {s}", "case_pack": rng.choice([1, 4])} for s in skus]
        ).execute()
    events = [event("till-01", 1, "receive", [(s, rng.randint(0, 30)) for s in skus], NOW)]
    for seq in range(2, 60):
        moves = [(s, -rng.randint(1, 4)) for s in rng.sample(skus, 5)]
        at = NOW - timedelta(days=rng.randint(0, 40))
        events.append(event("till-01", seq, rng.choice(["sale", "return"]), moves, at))
    store.apply_events(events, NOW)
    return skus


@pytest.mark.parametrize("master", [True, False])
def test_low_stock_list_equals_the_controllers_reorder_suggestions(db, master):
    fill(120, master)
    cfg = parse("").controller
    expected = [
        r for r in reorder.suggestions(cfg, NOW) if r.low and (r.daily_demand or r.on_hand <= 0)
    ]
    assert expected  # the data makes some items low
    assert stock.low_rows(cfg, NOW) == expected


def test_the_stock_list_pages_over_every_item_once_in_order(db):
    skus = fill(237, True)
    cfg = parse("").controller
    seen, after = [], None
    while True:
        rows, has_next, _ = stock.page_rows(cfg, after=after, limit=50)
        seen += [r["sku"] for r in rows]
        if not has_next:
            break
        after = rows[-1]["sku"]
    assert seen == sorted(skus)
    back, _, has_prev = stock.page_rows(cfg, before=seen[100], limit=50)
    assert [r["sku"] for r in back] == seen[50:100] and has_prev


def test_search_by_name_sku_prefix_and_barcode(db):
    fill(50, True)
    cfg = parse("").controller
    assert [r["sku"] for r in stock.page_rows(cfg, "S001")[0]] == [f"S001{n}" for n in range(10)]
    assert [r["sku"] for r in stock.page_rows(cfg, "4000000000042")[0]] == ["S0042"]
    named = stock.page_rows(cfg, "soap")[0]
    assert named and all("soap" in r["name"] for r in named)


def test_an_adjustment_is_a_stock_event_of_the_web_with_its_audit_row(db):
    fill(5, True)
    before = store.StockLevel.get_by_id("S0001").on_hand
    assert stock.apply_adjustment("S0001", -2, "broken", "boss", NOW) == before - 2
    assert stock.apply_adjustment("S0001", 5, "found", "boss", NOW) == before + 3
    moves = store.Move.select().where(store.Move.device == stock.WEB_DEVICE)
    assert [(m.seq, m.delta, m.kind) for m in moves] == [(1, -2, "adjust"), (2, 5, "adjust")]
    assert [a.reason for a in stock.adjustments_of("S0001")] == ["found", "broken"]


# ------------------------------------------------------------------ the alert contract

GOOD = {"v": 1, "device": "till-01", "id": "18c2-ab12", "kind": "call_staff",
        "text": "Customer asks for help", "ts": "2026-11-20T11:59:00.000000Z"}  # fmt: skip


def raw(**change) -> bytes:
    return json.dumps({**GOOD, **change}).encode()


def test_a_good_alert_parses():
    alert = topics.parse_alert(raw(), "till-01", NOW)
    assert (alert.device, alert.id, alert.kind) == ("till-01", "18c2-ab12", "call_staff")


@pytest.mark.parametrize(
    "payload, why",
    [
        (raw(kind="fire"), "unknown alert kind"),
        (raw(device="till-02"), "does not match the topic"),
        (raw(id="../../x"), "id must be"),
        (raw(id=""), "id must be"),
        (raw(text="x" * 201), "at most 200"),
        (raw(text="bell\x07"), "control characters"),
        (raw(v=2), "schema version"),
        (raw(text="x" * 2100), "over 2048"),
        (b"[" * 50 + b"]" * 50, "nested deeper"),
        (b'{"v":1,"v":1}', "appears twice"),
        (b"\xff\xfe", "not UTF-8"),
        (raw(ts=123), "ISO-8601"),
    ],
)
def test_hostile_alerts_are_refused_in_one_line(payload, why):
    with pytest.raises(topics.PayloadError, match=why):
        topics.parse_alert(payload, "till-01", NOW)


def test_an_alert_from_a_kiosk_with_a_wrong_clock_is_kept_at_the_controllers_time():
    alert = topics.parse_alert(raw(ts="2035-01-01T00:00:00Z"), "till-01", NOW)
    assert alert.ts == NOW
    assert topics.parse_alert(raw(ts="2001-01-01T00:00:00Z"), "till-01", NOW).ts == NOW


@given(st.binary(max_size=300))
def test_any_bytes_are_an_alert_or_a_refusal(payload):
    for parse_ in (
        lambda: topics.parse_alert(payload, "till-01", NOW),
        lambda: topics.parse_alert_ack(payload, "till-01"),
    ):
        with contextlib.suppress(topics.PayloadError):
            parse_()


def test_acks_name_an_alert_as_device_and_id():
    ack = topics.parse_alert_ack(
        json.dumps(
            {"v": 1, "device": "cart-01", "alert": "till-01/18c2-ab12", "by": "C1"}
        ).encode(),
        "cart-01",
    )
    assert (ack.alert_device, ack.alert_id, ack.by) == ("till-01", "18c2-ab12", "C1")
    for target in ("till-01", "a/b/c", "till 01/x", "till-01/"):
        with pytest.raises(topics.PayloadError):
            topics.parse_alert_ack(
                json.dumps({"v": 1, "device": "cart-01", "alert": target}).encode(), "cart-01"
            )


class Message:
    def __init__(self, topic: str, payload: bytes):
        self.topic, self.payload, self._topic = topic, payload, topic.encode()


def relay_of(tmp_path) -> Relay:
    config = parse(f'[device]\nstore = "store-042"\n[controller]\ndatabase = "{tmp_path}/c.db"')
    return Relay(config, Live())  # not connected: its publishes go nowhere


def test_the_link_stores_an_alert_once_caps_a_flood_and_dead_letters_poison(db, tmp_path):
    relay = relay_of(tmp_path)
    topic = "shop/store-042/kiosk/till-01/alert"
    relay._on_message(None, None, Message(topic, raw()))
    relay._on_message(None, None, Message(topic, raw()))  # a QoS 1 redelivery
    assert store.Alert.select().count() == 1
    for n in range(topics.MAX_OPEN_ALERTS + 5):
        relay._on_message(None, None, Message(topic, raw(id=f"flood-{n}")))
    assert store.Alert.select().count() == topics.MAX_OPEN_ALERTS
    poison = [b"", b"\x00" * 10, raw(kind="boom"), b"{" * 10_000, raw(device="till-02")]
    for payload in poison:
        relay._on_message(None, None, Message(topic, payload))
    relay._on_message(None, None, Message("shop/store-042/kiosk/../alert", raw()))  # ignored
    letters = list(store.DeadLetter.select())
    assert len(letters) == 6 + len(poison)  # 1 + 55 raised, 50 kept
    assert any("open alerts" in d.error for d in letters)
    # Acknowledged: no longer open, so the kiosk may raise new ones.
    assert relay.acknowledge("till-01", "18c2-ab12", "boss@web")
    assert not relay.acknowledge("till-01", "18c2-ab12", "boss@web")  # once
    relay._on_message(None, None, Message(topic, raw(id="after-ack")))
    assert store.Alert.get(store.Alert.alert_id == "after-ack").acked_at is None


def test_an_ack_from_a_kiosk_clears_the_alert(db, tmp_path):
    relay = relay_of(tmp_path)
    cleared = []
    relay.live.publish = lambda kind, data: cleared.append((kind, data))
    relay._on_message(None, None, Message("shop/store-042/kiosk/till-01/alert", raw()))
    ack = {"v": 1, "device": "cart-01", "alert": "till-01/18c2-ab12", "by": "C1"}
    relay._on_message(
        None, None, Message("shop/store-042/kiosk/cart-01/ack", json.dumps(ack).encode())
    )
    row = store.Alert.get()
    assert row.acked_by == "C1@cart-01" and row.acked_at
    assert [k for k, _ in cleared] == ["alert", "alert-cleared"]


# ------------------------------------------------------------------ passwords, lockout


def test_passwords_are_scrypt_hashes_and_checked(db):
    hashed = auth.hash_password("correct horse")
    assert hashed.startswith("scrypt$") and "correct horse" not in hashed
    assert auth.check_password("correct horse", hashed)
    assert not auth.check_password("correct hors", hashed)
    assert not auth.check_password("x", "garbage")


def test_repeated_failures_lock_a_user_and_time_unlocks_it(db):
    auth.add_user("boss", "long enough", "manager", now=NOW)
    for _ in range(2):
        with pytest.raises(auth.AuthError, match="wrong user name or password"):
            auth.authenticate("boss", "nope", 3, 10, NOW)
    with pytest.raises(auth.AuthError, match="locked until"):
        auth.authenticate("boss", "nope", 3, 10, NOW)
    with pytest.raises(auth.AuthError, match="locked until"):
        auth.authenticate("boss", "long enough", 3, 10, NOW + timedelta(minutes=9))
    assert auth.authenticate("boss", "long enough", 3, 10, NOW + timedelta(minutes=11)) == (
        "boss",
        "manager",
    )
    with pytest.raises(auth.AuthError, match="wrong user name"):
        auth.authenticate("nobody", "long enough", 3, 10, NOW)


@pytest.mark.parametrize(
    "name, password, role, why",
    [
        ("a b", "long enough", "manager", "user name"),
        ("boss", "short", "manager", "8 to"),
        ("boss", "long enough", "king", "role"),
    ],
)
def test_bad_web_users_are_refused(db, name, password, role, why):
    with pytest.raises(auth.AuthError, match=why):
        auth.add_user(name, password, role)


# ------------------------------------------------------------------ the kiosk's side


def test_a_kiosk_publishes_its_checkouts_alerts_with_their_kinds(shop):
    from kiosk.checkout.session import Checkout  # noqa: PLC0415
    from kiosk.drivers.base import MemoryDrawer, MemoryPrinter  # noqa: PLC0415
    from kiosk.mqtt.alerts import KioskAlerts, classify  # noqa: PLC0415

    alerts = KioskAlerts(shop.config, listen=False)  # not connected: alerts wait to be sent
    checkout = Checkout(shop, MemoryPrinter(), MemoryDrawer())
    checkout.subscribe(lambda e: alerts.on_event(e, checkout))
    checkout.scan("4001234000084")  # Lager 6-pack, 18+
    checkout.call_staff()
    sent = [json.loads(payload) for _, payload in alerts._pending]
    assert [a["kind"] for a in sent] == ["age_check", "call_staff"]
    assert {topic for topic, _ in alerts._pending} == {"shop/store-042/kiosk/till-01/alert"}
    assert all(topics.parse_alert(topics.encode(a), "till-01", NOW) for a in sent)
    assert classify("Printer: out of paper. Receipt R1 is queued for reprint") == "paper_out"
    assert classify("Storage full, sales cannot be recorded") == "disk_full"
    assert classify("Price override needs supervisor approval") == "approval"


def test_https_when_the_site_has_a_certificate(tmp_path):
    import ssl  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from kiosk.mqtt.web.server import WebService  # noqa: PLC0415
    from tests.mqtt_env import free_port  # noqa: PLC0415

    cert, key = tmp_path / "web.pem", tmp_path / "web.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    config = parse(
        f'[mqtt]\nport = {free_port()}\n[controller]\ndatabase = "{tmp_path}/c.db"\n'
        f'web_port = {port}\nweb_host = "127.0.0.1"\n'
        f'web_certfile = "{cert}"\nweb_keyfile = "{key}"\n'
    )
    db = store.open_store(config.controller.database)
    service = WebService(config).start()  # its broker link retries in the background
    try:
        assert service.running and service.url == f"https://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"{service.url}/login", context=context) as answer:
            assert answer.status == 200
            cookie = answer.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    finally:
        service.stop()
        db.close()


@pytest.mark.parametrize(
    "target, safe",
    [("/stock?q=a", "/stock?q=a"), ("//evil.example", "/"), ("/\\evil.example", "/"),
     ("https://evil.example", "/"), ("/x\r\nSet-Cookie: a=b", "/"), (None, "/")],
)  # fmt: skip
def test_after_login_only_a_path_of_this_site(target, safe):
    from kiosk.mqtt.web.app import _safe_next  # noqa: PLC0415

    assert _safe_next(target) == safe
