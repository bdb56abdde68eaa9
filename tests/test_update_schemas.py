"""Schemas across an update: ledgers and controller stores made by every earlier schema
(tests/fixtures, each made by the code of the commit that last had that schema, see
tests/fixtures/README.md) migrate forward with every row kept, a copy of the file as it
was is kept beside it, and `ledger verify` passes. A rollback to the previous version
(its real code, from git) opens the migrated ledger, sells on it, and the new version
then migrates it again with every sale from both."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.ledger import migrations
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.verify import verify
from kiosk.update import dbcopy

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
# The commit whose code last wrote ledger schema 4 (the version before the current one).
SCHEMA_4_COMMIT = "4106c31"
SALE = [
    '{"scan": "4006381333931"}',
    '{"pay": "start"}',
    '{"pay": {"cash": "5.00"}}',
    '{"receipt": "print"}',
    '{"expect": {"state": "attract"}}',
]


def unpack(name: str, folder: Path) -> Path:
    target = folder / ("ledger.db" if name.startswith("ledger") else "store.db")
    with gzip.open(FIXTURES / name) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
    return target


def snapshot(path: Path) -> dict:
    """What a migration must keep: every posted row and the derived balances."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        found = {}
        for table, order in (
            ("txn", "id"), ("txn_line", "id"), ("tender", "id"), ("stock_move", "id"),
            ("stock_balance", "sku, location"), ("outbox", "seq"), ("staff", "code"),
            ("item", "sku"),
        ):  # fmt: skip
            if table in tables:
                found[table] = db.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        return found
    finally:
        db.close()


def version(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def open_ledger(path: Path) -> Ledger:
    return Ledger.open(Config().with_ledger_path(path))


def kiosk_cli(args: list[str], code: Path | None = None) -> subprocess.CompletedProcess:
    """The kiosk command of this checkout, or of an older one's source tree."""
    env = {k: v for k, v in os.environ.items() if k != "KIOSK_CONFIG"}
    env["KIVY_NO_ARGS"] = "1"
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True,
                          text=True, env=env, cwd=code or REPO, timeout=300)  # fmt: skip


def sell(path: Path, folder: Path, code: Path | None = None) -> None:
    session = folder / "sale.jsonl"
    session.write_text("\n".join(SALE) + "\n")
    result = kiosk_cli(["replay", "--db", str(path), str(session)], code)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("schema", [1, 2, 3, 4, 5])
def test_ledger_of_every_schema_migrates_with_every_row(tmp_path, schema):
    path = unpack(f"ledger-schema{schema}.db.gz", tmp_path)
    assert version(path) == schema
    before = snapshot(path)
    assert len(before["txn"]) >= 4 and before["stock_balance"]
    ledger = open_ledger(path)
    try:
        assert verify(ledger) == []
    finally:
        ledger.close()
    assert version(path) == migrations.LATEST
    assert snapshot(path) == before
    copy = dbcopy.copy_name(path, schema)
    if schema < migrations.LATEST:
        assert copy.exists() and version(copy) == schema
        assert snapshot(copy) == before
        assert copy.stat().st_mode & 0o077 == 0
    else:
        assert not copy.exists()
    # the migrated ledger sells on, and verifies
    sell(path, tmp_path)
    after = snapshot(path)
    assert len(after["txn"]) == len(before["txn"]) + 1
    result = kiosk_cli(["ledger", "verify", "--db", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_new_ledger_keeps_no_copy(tmp_path):
    path = tmp_path / "ledger.db"
    open_ledger(path).close()
    assert version(path) == migrations.LATEST
    assert list(tmp_path.glob("*.bak")) == []


@pytest.fixture(scope="module")
def schema_4_code(tmp_path_factory):
    """The kiosk package as it was at the last commit with ledger schema 4."""
    if shutil.which("git") is None:
        pytest.fail("git is missing: apt-get install git")
    folder = tmp_path_factory.mktemp("schema4-code")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", SCHEMA_4_COMMIT, "kiosk"],
                             capture_output=True, timeout=120)  # fmt: skip
    assert archive.returncode == 0, archive.stderr.decode()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def test_rollback_to_the_previous_version_keeps_every_sale(tmp_path, schema_4_code):
    path = unpack("ledger-schema4.db.gz", tmp_path)
    fixture_txns = len(snapshot(path)["txn"])
    # the new version starts: migrates (keeping a copy), and sells
    sell(path, tmp_path)
    assert version(path) == migrations.LATEST
    # the old version as it is today refuses the newer file
    old = kiosk_cli(["ledger", "verify", "--db", str(path)], schema_4_code)
    assert old.returncode != 0 and "newer than this software" in old.stderr
    # the rollback's boot check steps the file down; the old code sells on it
    said = dbcopy.step_down(path, 4)
    assert "stepped down to 4" in said and "\n" not in said
    assert version(path) == 4
    sell(path, tmp_path, schema_4_code)
    old = kiosk_cli(["ledger", "verify", "--db", str(path)], schema_4_code)
    assert old.returncode == 0, old.stdout + old.stderr
    # forward again: every sale of the fixture, the new version and the old one
    ledger = open_ledger(path)
    try:
        assert verify(ledger) == []
    finally:
        ledger.close()
    assert version(path) == migrations.LATEST
    assert len(snapshot(path)["txn"]) == fixture_txns + 2
    assert version(dbcopy.copy_name(path, 4)) == 4


def test_step_down_refuses_a_file_older_code_cannot_use(tmp_path):
    path = unpack("ledger-schema5.db.gz", tmp_path)
    open_ledger(path).close()
    db = sqlite3.connect(path)
    latest = migrations.LATEST
    db.execute(f"UPDATE schema_compat SET readable_by = {latest} WHERE version = {latest}")
    db.commit()
    db.close()
    dbcopy.keep_copy(path, 4)
    with pytest.raises(dbcopy.NewerSchemaError) as caught:
        dbcopy.step_down(path, 4)
    text = str(caught.value)
    assert "\n" not in text and "ledger.db.schema-4.bak" in text
    assert version(path) == latest
    assert dbcopy.step_down(path, latest) is None  # nothing to do for its own version


def test_current_code_refuses_a_newer_ledger_in_one_line(tmp_path):
    path = unpack("ledger-schema5.db.gz", tmp_path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")  # says nothing of who can read it
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="cannot be used by this version") as caught:
        open_ledger(path)
    assert "\n" not in str(caught.value)
    assert version(path) == migrations.LATEST + 1  # nothing changed


def test_opening_a_ledger_a_newer_version_migrated_steps_it_down(tmp_path, caplog):
    """A rollback's first open (the app at boot) makes the file usable itself: no step
    before the app on the boot's critical path; every row stays."""
    path = unpack("ledger-schema5.db.gz", tmp_path)
    open_ledger(path).close()
    before = snapshot(path)
    newer = migrations.LATEST + 1
    db = sqlite3.connect(path)
    db.execute(f"INSERT INTO schema_compat (version, readable_by) VALUES ({newer}, 1)")
    db.execute(f"PRAGMA user_version = {newer}")
    db.commit()
    db.close()
    with caplog.at_level("WARNING", logger="kiosk.ledger.core"):
        ledger = open_ledger(path)
    try:
        assert verify(ledger) == []
    finally:
        ledger.close()
    assert f"schema {newer} (written by a newer version) stepped down to" in caplog.text
    assert version(path) == migrations.LATEST
    assert snapshot(path) == before


@pytest.mark.parametrize("schema", [0, 1, 2, 3, 4])
def test_controller_store_of_every_schema_migrates(tmp_path, schema):
    from kiosk.mqtt import store, topics  # noqa: PLC0415

    path = unpack(f"store-schema{schema}.db.gz", tmp_path)
    assert version(path) == schema
    db = sqlite3.connect(path)
    levels = dict(db.execute("SELECT sku, on_hand FROM stock_level"))
    applied = db.execute("SELECT device, seq, kind, txn FROM applied_event ORDER BY id").fetchall()
    db.close()
    assert levels == {"HL-YEL": 116, "CABLE": 23} and len(applied) == 6
    handle = store.open_store(str(path))
    try:
        assert store.schema_version(handle) == store.SCHEMA_VERSION
        assert {r.sku: r.on_hand for r in store.StockLevel.select()} == levels
        rows = store.AppliedEvent.select().order_by(store.AppliedEvent.id)
        assert [(r.device, r.seq, r.kind, r.txn) for r in rows] == applied
        copy = dbcopy.copy_name(path, schema)
        assert copy.exists() == (schema < store.SCHEMA_VERSION)
        # the migrated store applies the next event of a kiosk it knows
        now = datetime.now(UTC)
        raw = topics.encode(
            {"v": 1, "device": "till-02", "seq": 4, "id": "till-02:4",
             "ts": now.strftime(topics.TS_FORMAT), "kind": "sale", "txn": "till-02-000004",
             "moves": [{"sku": "CABLE", "delta": -2}]}
        )  # fmt: skip
        store.apply_events([topics.parse_stock_event(raw, "till-02", now=now)], now)
        assert store.StockLevel.get_by_id("CABLE").on_hand == 21
        # schema 4's tables (the web view's) are there and take rows
        store.WebUser.create(name="m1", password_hash="x", role="manager", created_at="t")
        store.Alert.create(device="till-02", alert_id="a1", kind="help", text="t", raised_at="t")
        assert store.WebUser.select().count() == store.Alert.select().count() == 1
    finally:
        handle.close()
