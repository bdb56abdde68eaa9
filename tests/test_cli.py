"""The `kiosk` command as a user runs it: a real process, exit codes, stderr."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import CATALOG


@pytest.fixture
def env(tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[device]\nid = "till-01"\nstore = "s1"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
        '[mqtt]\npassword = "hunter2"\n'
    )
    environ = {**os.environ, "KIOSK_CONFIG": str(config)}
    environ.pop("KIOSK_CONFIG_PATH", None)
    return environ


def kiosk(env, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_user_error(result, text):
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run"],
        ["config"],
        ["config", "check"],
        ["config", "show"],
        ["catalog", "import"],
        ["catalog", "export"],
        ["stock"],
        ["report", "z"],
        ["ledger", "verify"],
        ["staff", "add"],
        ["staff", "list"],
    ],
)
def test_help_everywhere(env, args):
    result = kiosk(env, *args, "--help")
    assert result.returncode == 0 and "Usage: kiosk" in result.stdout
    if args and args[-1] not in ("config", "catalog", "report", "ledger", "staff") or not args:
        assert "--config" in result.stdout


def test_user_mistakes_exit_2_with_one_line(env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nport = 'x'\n")
    assert_user_error(kiosk(env, "config", "check", str(bad)), "mqtt.port")
    assert_user_error(kiosk(env, "--config", str(tmp_path / "no.toml"), "stock"), "no such config")
    assert_user_error(kiosk(env, "stock", "--config", str(bad)), "mqtt.port")
    assert_user_error(kiosk(env, "stock", "NOPE"), "unknown item 'NOPE'")
    assert_user_error(kiosk(env, "report", "z", "--date", "yesterday"), "is not YYYY-MM-DD")
    assert_user_error(kiosk(env, "report", "z", "--float", "lots"), "--float 'lots'")
    no_display = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    assert_user_error(kiosk(no_display, "run"), "no display")
    assert_user_error(kiosk(env, "frobnicate"), "No such command")
    assert_user_error(kiosk(env, "catalog", "import", str(tmp_path / "none.csv")), "no such file")
    add = kiosk(env, "staff", "add", "S1", "--name", "Sam", "--role", "supervisor", stdin="12\n")
    assert_user_error(add, "PIN must be 4 to 8 digits")


def test_broken_ledger_file_is_a_clear_error(env, tmp_path):
    (tmp_path / "l.db").write_bytes(b"this is not a database" * 100)
    result = kiosk(env, "stock")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "l.db" in result.stderr


def test_config_show_masks_secrets(env):
    result = kiosk(env, "config", "show")
    assert result.returncode == 0
    assert '"password": "********"' in result.stdout and "hunter2" not in result.stdout
    assert kiosk(env, "config", "check", env["KIOSK_CONFIG"]).stdout.endswith(": ok\n")


def test_catalog_stock_staff_and_reports(env, tmp_path):
    good = tmp_path / "items.csv"
    good.write_text(CATALOG)
    dry = kiosk(env, "catalog", "import", str(good), "--dry-run")
    assert dry.returncode == 0 and "12 rows ok" in dry.stdout
    done = kiosk(env, "catalog", "import", str(good))
    assert done.returncode == 0 and "12 added" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text(CATALOG + "PEN,again,1.00,A,each,,,,,\nX,x,abc,A,each,,,,,\n")
    refused = kiosk(env, "catalog", "import", str(bad))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "line 14: duplicate SKU PEN" in refused.stderr
    assert "line 15: price 'abc' is not a number" in refused.stderr
    exported = kiosk(env, "catalog", "export")
    assert exported.returncode == 0 and exported.stdout.count("\n") == 13
    stock = kiosk(env, "stock", "PEN")
    assert stock.returncode == 0 and stock.stdout.split()[:2] == ["PEN", "0"]
    added = kiosk(
        env, "staff", "add", "S1", "--name", "Sam", "--role", "supervisor", stdin="4321\n"
    )
    assert added.returncode == 0
    listed = kiosk(env, "staff", "list")
    assert "S1" in listed.stdout and "4321" not in listed.stdout
    z = kiosk(env, "report", "z", "--float", "50")
    assert z.returncode == 0 and "cash expected in drawer" in z.stdout and "50.00" in z.stdout
    verified = kiosk(env, "ledger", "verify")
    assert verified.returncode == 0 and verified.stdout.endswith(": ok\n")


def test_run_refuses_a_scanner_it_cannot_find_in_one_line(tmp_path):
    """Before any window opens: the scanner is made with the other drivers. (One that
    matches no device yet is waited for: scanners are plugged in while the kiosk runs.)"""
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[device]\nid = "till-01"\nstore = "s1"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
        '[drawer]\nkind = "none"\n[printer]\nkind = "none"\n'
    )
    environ = {**os.environ, "KIOSK_CONFIG": str(config), "DISPLAY": ":1999"}  # no X needed
    assert_user_error(kiosk(environ, "run"), 'set [scanner] match to a name, "vendor:product"')


def test_demo_runs_headless_with_no_config(tmp_path):
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KIOSK_CONFIG", "DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
    }
    environ["XDG_DATA_HOME"] = str(tmp_path / "data")
    result = kiosk(environ, "run", "--demo")  # no display: the text shift instead
    assert "no display here" in result.stderr
    assert result.returncode == 0, result.stderr
    assert "seeded demo ledger" in result.stdout
    assert "no  Cannot read that barcode (bad check digit)" in result.stdout
    assert "Paid, thank you!" in result.stdout and "RCPdemo-01-" in result.stdout
    assert "ledger verify: ok" in result.stdout
    assert (tmp_path / "data" / "kiosk" / "demo-ledger.db").exists()
    second = kiosk(environ, "run", "--demo", "--headless")  # the same ledger: sells on
    assert second.returncode == 0 and "seeded" not in second.stdout


def test_replay_command(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "KIOSK_CONFIG"}
    environ["XDG_DATA_HOME"] = str(tmp_path / "data")
    script = tmp_path / "s.jsonl"
    script.write_text(
        '{"scan": "4006381333931"}\n{"pay": {"cash": "5.00"}}\n'
        '{"expect": {"state": "receipt"}}\n{"receipt": "print"}\n'
    )
    ok = kiosk(environ, "replay", str(script))
    assert ok.returncode == 0, ok.stderr
    assert "replaying on a fresh demo ledger" in ok.stdout
    assert re.search(r"^   2 pay +ok  Paid, thank you!", ok.stdout, re.M)
    assert "posted 1 transaction(s)" in ok.stdout
    db = tmp_path / "r.db"
    kept = kiosk(
        environ, "replay", str(script), "--db", str(db), "--catalog", str(_catalog(tmp_path))
    )
    assert kept.returncode == 0 and db.exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"scan": "4006381333931"}\n{"scan": \n')
    assert_user_error(kiosk(environ, "replay", str(bad)), "line 2: not JSON")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"scan": "4006381333931"}\n{"expect": {"state": "paying"}}\n')
    failed = kiosk(environ, "replay", str(wrong))
    assert failed.returncode == 1
    assert "expectation failed: line 2: expected state 'paying', got 'scanning'" in failed.stdout


def _catalog(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(CATALOG.replace("PEN,Pen", "HL,Pen"))
    return path


def test_broker_config_and_device_credentials(env, tmp_path):
    folder = tmp_path / "broker"
    made = kiosk(env, "broker", "config", str(folder), "--port", "1884")
    assert made.returncode == 0, made.stderr
    conf = (folder / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "max_queued_messages 500000" in conf
    assert "pattern write shop/s1/kiosk/%u/stock" in (folder / "acl").read_text()
    assert "pattern read shop/s1/alerts/#" in (folder / "acl").read_text()  # attendant alerts
    out = tmp_path / "till-09.pass"
    added = kiosk(env, "broker", "add-device", "till-09", "--dir", str(folder),
                  "--password-out", str(out))  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert (folder / "passwd").read_text().startswith("till-09:")
    assert len(out.read_text().strip()) >= 20 and oct(out.stat().st_mode)[-3:] == "600"
    assert_user_error(kiosk(env, "broker", "add-device", "bad name!", "--dir", str(folder)),
                      "is not a device id")  # fmt: skip
    half = kiosk(env, "broker", "config", str(folder), "--tls-cert", str(out))
    assert_user_error(half, "TLS needs both")


def test_controller_web_user_is_added_with_a_hashed_password(env, tmp_path):
    import sqlite3  # noqa: PLC0415

    db = tmp_path / "controller.db"
    made = kiosk(env, "controller", "--db", str(db), "web-user", "anna", "--role", "attendant",
                 stdin="correct horse\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "web user anna (attendant) saved" in made.stdout
    with sqlite3.connect(db) as rows:
        ((role, hashed, failed),) = rows.execute(
            "SELECT role, password_hash, failed_attempts FROM web_user WHERE name = 'anna'"
        ).fetchall()
    assert role == "attendant" and failed == 0
    assert hashed.startswith("scrypt$") and "correct horse" not in hashed
    short = kiosk(env, "controller", "--db", str(db), "web-user", "anna", stdin="short\n")
    assert_user_error(short, "a password needs 8 to 1024 characters")
    bad = kiosk(env, "controller", "--db", str(db), "web-user", "a/b", stdin="long enough\n")
    assert_user_error(bad, "a user name is 1-32 letters")
