"""`kiosk update ...` for technicians: one line and exit 2 for every refusal."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk.cli.update import update_group
from kiosk.ledger import migrations
from kiosk.update import bundle, tryboot

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def kiosk(tmp_path, monkeypatch):
    """A kiosk's config, boot selection folder and keys; returns a runner function."""
    for tool, package in (("rauc", "rauc"), ("mksquashfs", "squashfs-tools")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package}")
    boot = tmp_path / "bootsel"
    boot.mkdir()
    (boot / "autoboot.txt").write_text(tryboot.autoboot_text("A"))
    (tmp_path / "cmdline").write_text("rauc.slot=A\n")
    monkeypatch.setenv("KIOSK_BOOTSEL", str(boot))
    monkeypatch.setenv("KIOSK_FIRMWARE_DT", str(tmp_path / "none"))
    monkeypatch.setenv("KIOSK_CMDLINE", str(tmp_path / "cmdline"))
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    keys = tmp_path / "keys"
    runner = CliRunner()
    assert runner.invoke(update_group, ["dev-key", str(keys)]).exit_code == 0
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f"[ledger]\npath = '{tmp_path / 'data' / 'ledger.db'}'\n"
        f"[update]\nkeyring = '{keys / 'kiosk-dev.cert.pem'}'\n"
        f"state_file = '{tmp_path / 'data' / 'update.json'}'\n"
    )

    def run(*args: str):
        command, *rest = args
        if command in ("bundle", "dev-key"):  # build-host commands: no kiosk config
            return runner.invoke(update_group, list(args))
        return runner.invoke(update_group, [command, "--config", str(config), *rest])

    run.tmp, run.keys = tmp_path, keys
    return run


def one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiosk: "), result.output
    return lines[0]


def test_status_on_an_ab_card(kiosk):
    result = kiosk("status")
    assert result.exit_code == 0, result.output
    assert "running:  slot A" in result.output and "boots:    slot A" in result.output
    assert '"booted": "A"' in kiosk("status", "--json").output


def test_bundle_then_refusals(kiosk):
    root = kiosk.tmp / "root.ext4"
    root.write_bytes(os.urandom(256 * 1024))
    made = kiosk.tmp / "kiosk-1.2.4.raucb"
    result = kiosk("bundle", "--version", "1.2.4", "--root", str(root),
                   "--cert", str(kiosk.keys / "kiosk-dev.cert.pem"),
                   "--key", str(kiosk.keys / "kiosk-dev.key.pem"), str(made))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert bundle.check(made, kiosk.keys / "kiosk-dev.cert.pem").version == "1.2.4"
    tampered = kiosk.tmp / "tampered.raucb"
    data = bytearray(made.read_bytes())
    data[100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    assert "does not match its signature" in one_line(kiosk("install", str(tampered)))
    assert "no such bundle" in one_line(kiosk("install", str(kiosk.tmp / "nope.raucb")))
    # a USB stick with only a tampered bundle, and an empty one
    stick = kiosk.tmp / "stick"
    stick.mkdir()
    assert "no *.raucb bundle" in one_line(kiosk("usb", str(stick)))
    shutil.copy(tampered, stick / "kiosk.raucb")
    result = kiosk("usb", str(stick))
    assert result.exit_code == 2 and "no bundle on the stick is signed" in result.output
    # the good bundle is checked, then RAUC's service (absent here) is asked: one line
    shutil.copy(made, stick / "kiosk-1.2.4.raucb")
    result = kiosk("usb", str(stick))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and lines[0].startswith("refused: kiosk.raucb: the payload")
    assert lines[1].startswith("kiosk: rauc install: RAUC's service does not answer")


def test_switch_and_rollback_with_nothing_to_do(kiosk):
    assert kiosk("switch", "--when-quiet").exit_code == 0  # the timer's usual case
    assert "nothing installed" in one_line(kiosk("switch"))
    tryboot.Backend(kiosk.tmp / "bootsel").set_state("B", False)
    assert "marked bad" in one_line(kiosk("rollback"))


def test_step_down_before_the_app_starts(kiosk):
    ledger = kiosk.tmp / "data" / "ledger.db"
    ledger.parent.mkdir()
    with gzip.open(FIXTURES / "ledger-schema5.db.gz") as source, open(ledger, "wb") as out:
        shutil.copyfileobj(source, out)
    assert kiosk("step-down").output == ""  # its own schema: nothing to do
    db = sqlite3.connect(ledger)
    db.execute("CREATE TABLE schema_compat (version INTEGER PRIMARY KEY, readable_by INTEGER)")
    newer = migrations.LATEST + 1  # a ledger a newer release migrated
    db.execute(f"INSERT INTO schema_compat VALUES ({newer}, {newer})")
    db.execute(f"PRAGMA user_version = {newer}")
    db.commit()
    db.close()
    assert "cannot be used by this version" in one_line(kiosk("step-down"))
    db = sqlite3.connect(ledger)
    db.execute("UPDATE schema_compat SET readable_by = 1")
    db.commit()
    db.close()
    result = kiosk("step-down")
    assert result.exit_code == 0 and f"stepped down to {migrations.LATEST}" in result.output


def test_an_older_bundle_is_refused_unless_allowed(kiosk):
    root = kiosk.tmp / "root.ext4"
    root.write_bytes(os.urandom(256 * 1024))
    old = kiosk.tmp / "kiosk-0.0.9.raucb"
    cert, key = kiosk.keys / "kiosk-dev.cert.pem", kiosk.keys / "kiosk-dev.key.pem"
    bundle.build(old, "0.0.9", cert, key, root)
    assert "not newer than the running" in one_line(kiosk("install", str(old)))
    # allowed: it gets as far as RAUC's service (absent here)
    assert "RAUC's service does not answer" in one_line(kiosk("install", str(old), "--allow-older"))


def test_version_order():
    from kiosk.update.manager import version_key  # noqa: PLC0415

    ordered = ["0.9", "0.10.0", "1.2.3", "1.2.10", "1.10.0", "2.0.0"]
    assert sorted(ordered, key=version_key) == ordered
    assert version_key("1.2.3") < version_key("1.2.3.1")
