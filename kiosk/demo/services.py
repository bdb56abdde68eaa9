"""The demo's shop network: a local Mosquitto, the shop controller and the kiosk's
publisher, started when a mosquitto binary is present, so shop stock updates live.
Without one the kiosk runs offline and says so."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from kiosk.config import Config
from kiosk.mqtt import broker
from kiosk.mqtt.publisher import Publisher


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DemoServices:
    def __init__(self, config: Config, ledger_path: Path, folder: Path):
        self.config = config
        self.ledger_path = ledger_path
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        self.publisher: Publisher | None = None
        self.note = ""
        self.mqtt_config = config

    def start(self, offline_note: str, online_note: str) -> DemoServices:
        if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
            self.note = offline_note + " (no mosquitto here: apt-get install mosquitto)"
            return self
        port = _free_port()
        conf = self.folder / "broker"
        run_as = "root" if os.geteuid() == 0 else None
        broker.write_config(conf, self.config.topic_root, port=port, listen="127.0.0.1",
                            run_as=run_as)  # fmt: skip
        device = self.config.device.id
        passwords = {
            user: broker.add_credentials(conf / "passwd", user, secrets.token_urlsafe(12))
            for user in (device, broker.CONTROLLER_USER)
        }
        log = open(conf / "mosquitto.out", "ab")  # noqa: SIM115 - lives with the process
        self.processes.append(
            subprocess.Popen(
                ["mosquitto", "-c", str(conf / "mosquitto.conf")], stdout=log, stderr=log
            )  # fmt: skip
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        controller_toml = conf / "controller.toml"
        controller_toml.write_text(
            f'[device]\nid = "demo-controller"\nstore = "{self.config.device.store}"\n'
            f'[mqtt]\nport = {port}\nusername = "{broker.CONTROLLER_USER}"\n'
            f'password = "{passwords[broker.CONTROLLER_USER]}"\n'
            f'[controller]\ndatabase = "{self.folder / "controller.db"}"\n'
        )
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "kiosk.cli", "controller", "--config", str(controller_toml)],
                stdout=subprocess.DEVNULL,
                stderr=open(conf / "controller.out", "ab"),  # noqa: SIM115
            )
        )
        mqtt = self.config.mqtt.replace(
            host="127.0.0.1", port=port, username=device, password=passwords[device]
        )
        self.mqtt_config = self.config.replace(mqtt=mqtt)
        self.publisher = Publisher(self.mqtt_config, self.ledger_path, status_every=5).start()
        self.note = f"{online_note} (local broker 127.0.0.1:{port})"
        return self

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
