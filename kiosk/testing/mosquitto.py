"""A real Mosquitto for tests and benches: its own config, password file and ACL (as
`kiosk broker config` writes them), on a free loopback port, started and killed by the
caller."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kiosk.config import Config, parse
from kiosk.mqtt import broker
from kiosk.testing import need

ROOT = "shop/store-042"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 30.0, every: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Mosquitto:
    def __init__(self, directory: Path, users: list[str]):
        need("mosquitto", "mosquitto")
        need("mosquitto_passwd", "mosquitto")
        self.dir = directory
        self.port = free_port()
        run_as = "root" if os.geteuid() == 0 else None
        broker.write_config(directory, ROOT, port=self.port, listen="127.0.0.1", run_as=run_as)
        self.passwords = {
            user: broker.add_credentials(directory / "passwd", user) for user in users
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def listening():
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.process.stderr.read().decode()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 10, what="mosquitto to listen")
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(10)
        self.process = None

    def spawn(self, command: str, user: str, folder: Path, extra: str = "", env=None, python=()):
        """`kiosk COMMAND` (controller or sync) in its own process, logged in as `user`;
        `python`: options for the interpreter before `-m kiosk.cli` (e.g. cProfile's)."""
        config = folder / f"{command}-{user}.toml"
        config.write_text(
            f'[device]\nid = "{user if user != "controller" else "hq"}"\nstore = "store-042"\n'
            f'[mqtt]\nport = {self.port}\nusername = "{user}"\n'
            f'password = "{self.passwords[user]}"\n{extra}'
        )
        return subprocess.Popen(
            [sys.executable, *python, "-m", "kiosk.cli", command, "--config", str(config)],
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def config(self, user: str, ledger: Path | None = None, **extra: str) -> Config:
        device = user if user != broker.CONTROLLER_USER else "controller-host"
        ledger_line = f'path = "{ledger}"' if ledger else ""
        controller = extra.get("controller", "")
        return parse(
            f"""
[device]
id = "{device}"
store = "store-042"
[ledger]
{ledger_line}
[mqtt]
host = "127.0.0.1"
port = {self.port}
username = "{user}"
password = "{self.passwords.get(user, extra.get("password", "wrong"))}"
keepalive = 5
[controller]
resync_after_s = 0.5
{controller}
"""
        )
