"""Device bundles: the folders `kiosk provision build` writes and first boot installs.

Every bundle holds kiosk.toml, firstboot.toml (with the Wi-Fi key) and mqtt.pass
(the device's broker password); the bundle folder is 0700 and every file with a secret
0600. The device named by the site's `[broker] device` also gets broker/
(Mosquitto's config, ACL and the shop's password file, with paths as they are on the
device) and controller.toml + controller.pass for the shop controller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from kiosk import files
from kiosk.config import parse
from kiosk.mqtt import broker
from kiosk.provision import site as site_mod

# Where the broker's files live on a kiosk that hosts it. The queue is on the data
# partition (bind-mounted at /var/lib/mosquitto, see image/build.sh): the root is read-only.
DEVICE_BROKER_DIR = Path("/etc/kiosk/broker")
DEVICE_BROKER_DATA = Path("/var/lib/mosquitto")
DEVICE_CONTROLLER_DB = "/var/lib/kiosk/controller.db"


def _secret(path: Path, text: str) -> None:
    """A file with a secret (a password, the Wi-Fi key): 0600 from its first byte, and
    an older bundle's world-readable file replaced, not written into."""
    files.write_private(path, text if text.endswith("\n") else text + "\n")


def _folder(path: Path) -> Path:
    """A bundle folder only its owner can open (it is full of secrets)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


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
        bundle = _folder(out / device.device)
        (bundle / "kiosk.toml").write_text(configs[device.device])
        _secret(bundle / "firstboot.toml", site_mod.firstboot_settings(site, device))
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
    folder = _folder(bundle / "broker")
    (folder / "mosquitto.conf").write_text(
        broker.render_config(
            DEVICE_BROKER_DIR,
            port=site.broker.port,
            data_dir=DEVICE_BROKER_DATA,
            log_to_journal=True,
        )
    )
    (folder / "acl").write_text(broker.render_acl(root))
    files.write_private(folder / "passwd", (broker_dir / "passwd").read_bytes())
    (bundle / "controller.toml").write_text(
        site_mod.controller_config(site, device, DEVICE_CONTROLLER_DB)
    )
