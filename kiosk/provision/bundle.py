"""Device bundles: the folders `kiosk provision build` writes and first boot installs.

Every bundle holds kiosk.toml, firstboot.toml and mqtt.pass (the device's broker
password). The device named by the site's `[broker] device` also gets broker/
(Mosquitto's config, ACL and the shop's password file, with paths as they are on the
device) and controller.toml + controller.pass for the shop controller.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from kiosk.config import parse
from kiosk.mqtt import broker
from kiosk.provision import site as site_mod

# Where the broker's files live on a kiosk that hosts it. The queue is on the data
# partition (bind-mounted at /var/lib/mosquitto, see image/build.sh): the root is read-only.
DEVICE_BROKER_DIR = Path("/etc/kiosk/broker")
DEVICE_BROKER_DATA = Path("/var/lib/mosquitto")
DEVICE_CONTROLLER_DB = "/var/lib/kiosk/controller.db"


def _secret(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text + "\n")


def _credentials(password_file: Path, user: str, secret: Path) -> None:
    """Add a user to the broker's password file with the password its bundle already
    holds, or a new one: building again for a new device leaves the others working."""
    kept = secret.read_text().strip() if secret.exists() else None
    _secret(secret, broker.add_credentials(password_file, user, kept or None))


def write_bundles(
    site: site_mod.Site,
    devices: list[site_mod.Device],
    configs: dict[str, str],
    out: Path,
    broker_dir: Path,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
) -> None:
    """One bundle per device; each device's credentials go into broker_dir's passwd
    (the shop broker's, wherever it runs). Devices that already have a bundle in
    `out` keep their passwords. Raises broker.BrokerError."""
    root = parse(configs[devices[0].device]).topic_root  # the kiosks' own rule for it
    if not (broker_dir / "mosquitto.conf").exists():
        broker.write_config(broker_dir, root)
    for device in progress(devices):
        bundle = out / device.device
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "kiosk.toml").write_text(configs[device.device])
        (bundle / "firstboot.toml").write_text(site_mod.firstboot_settings(site, device))
        _credentials(broker_dir / "passwd", device.device, bundle / "mqtt.pass")
    host = next((d for d in devices if site_mod.hosts_broker(site, d)), None)
    if host is not None:
        bundle = out / host.device
        _credentials(broker_dir / "passwd", broker.CONTROLLER_USER, bundle / "controller.pass")
        _write_broker_host(site, host, bundle, broker_dir, root)


def _write_broker_host(
    site: site_mod.Site, device: site_mod.Device, bundle: Path, broker_dir: Path, root: str
) -> None:
    """The broker and controller files for the hosting device; written after every
    device's credentials, so its copy of the password file knows them all."""
    folder = bundle / "broker"
    folder.mkdir(exist_ok=True)
    (folder / "mosquitto.conf").write_text(
        broker.render_config(
            DEVICE_BROKER_DIR,
            port=site.broker.port,
            data_dir=DEVICE_BROKER_DATA,
            log_to_journal=True,
        )
    )
    (folder / "acl").write_text(broker.render_acl(root))
    shutil.copyfile(broker_dir / "passwd", folder / "passwd")
    (folder / "passwd").chmod(0o600)
    (bundle / "controller.toml").write_text(
        site_mod.controller_config(site, device, DEVICE_CONTROLLER_DB)
    )
