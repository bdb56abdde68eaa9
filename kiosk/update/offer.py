"""The shop controller's update offer: which signed bundle the kiosks of the shop should
run, made by `kiosk controller offer-update` and read by `kiosk update fetch`.

The controller keeps the bundle and `current.json` in its updates folder and serves both
from its web view (`GET /updates/current.json`, `GET /updates/<file>` with Range). A
bundle holds no secret (the image's own files, signed by the site's key), so serving it
needs no login on the shop LAN: what makes it safe is the signature the kiosk checks
before installing (kiosk.update.bundle.check), the sha256 it checks after downloading
and the bounds on everything here.

current.json:
    {"v": 1, "version": "1.2.5", "file": "kiosk-1.2.5.raucb", "size": 734003200,
     "sha256": "<64 hex>", "devices": "all" | ["till-01", ...], "not_before": "<ISO time>"}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kiosk.update import UpdateError

CURRENT = "current.json"
MAX_CURRENT_BYTES = 64 * 1024  # 1,000 device ids fit
MAX_BUNDLE_BYTES = 4 * 1024**3
MAX_DEVICES = 1000
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}")
_FILE = re.compile(r"kiosk-[0-9A-Za-z.+~-]{1,64}\.raucb")
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEYS = {"v", "version", "file", "size", "sha256", "devices", "not_before"}


@dataclass(frozen=True)
class Offer:
    version: str
    file: str
    size: int
    sha256: str
    devices: tuple[str, ...] | None  # None: every kiosk of the shop
    not_before: datetime | None

    def for_device(self, device: str, now: datetime) -> bool:
        if self.not_before is not None and now < self.not_before:
            return False
        return self.devices is None or device in self.devices

    def as_json(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "version": self.version,
                "file": self.file,
                "size": self.size,
                "sha256": self.sha256,
                "devices": "all" if self.devices is None else list(self.devices),
                "not_before": self.not_before.isoformat() if self.not_before else None,
            },
            indent=1,
        )


def parse(raw: bytes) -> Offer:
    """An offer within every bound, or UpdateError in one line."""
    if len(raw) > MAX_CURRENT_BYTES:
        raise UpdateError(f"the update offer is over {MAX_CURRENT_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UpdateError("the update offer is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not set(data) <= _KEYS:
        raise UpdateError("the update offer is not a version 1 offer")
    version, file = data.get("version"), data.get("file")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise UpdateError("the update offer's version is not a version")
    if not isinstance(file, str) or not _FILE.fullmatch(file):
        raise UpdateError("the update offer's file is not a bundle name (kiosk-<version>.raucb)")
    size = data.get("size")
    if type(size) is not int or not 0 < size <= MAX_BUNDLE_BYTES:
        raise UpdateError(f"the update offer's size must be 1..{MAX_BUNDLE_BYTES} bytes")
    digest = data.get("sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise UpdateError("the update offer's sha256 is not 64 hex digits")
    devices = data.get("devices", "all")
    if devices != "all":
        if not isinstance(devices, list) or len(devices) > MAX_DEVICES:
            raise UpdateError(
                f'the update offer\'s devices must be "all" or up to {MAX_DEVICES} ids'
            )
        if not all(isinstance(d, str) and _DEVICE.fullmatch(d) for d in devices):
            raise UpdateError("the update offer names a device id that is not one")
    not_before = data.get("not_before")
    when = None
    if not_before is not None:
        try:
            when = datetime.fromisoformat(str(not_before)[:40])
        except ValueError:
            raise UpdateError("the update offer's not_before is not an ISO time") from None
        if when.tzinfo is None:
            raise UpdateError("the update offer's not_before must carry a time zone")
    chosen = None if devices == "all" else tuple(devices)
    return Offer(version, file, size, digest, chosen, when)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def publish(
    folder: Path,
    bundle: Path,
    version: str,
    devices: tuple[str, ...] | None = None,
    not_before: datetime | None = None,
) -> Offer:
    """Put a (checked) bundle in the controller's updates folder and make it the offer;
    the previous offer's bundle is removed once the new one is in place."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"kiosk-{version}.raucb"
    if not _FILE.fullmatch(name):
        raise UpdateError(f"version {version[:64]!r} does not make a bundle name")
    size = bundle.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise UpdateError(f"{bundle.name}: over {MAX_BUNDLE_BYTES} bytes")
    if shutil.disk_usage(folder).free < size + 64 * 1024**2:
        raise UpdateError(f"{folder}: not enough free space for {bundle.name} ({size} bytes)")
    previous = current(folder)
    temporary = folder / f".{name}.part"
    shutil.copyfile(bundle, temporary)
    offer = Offer(version, name, size, sha256_of(temporary), devices, not_before)
    os.replace(temporary, folder / name)
    _write(folder / CURRENT, offer.as_json())
    if previous is not None and previous.file != name:
        (folder / previous.file).unlink(missing_ok=True)
    return offer


def withdraw(folder: Path) -> Offer | None:
    """No offer any more (kiosks keep what they run); returns the one withdrawn."""
    previous = current(folder)
    (folder / CURRENT).unlink(missing_ok=True)
    if previous is not None:
        (folder / previous.file).unlink(missing_ok=True)
    return previous


def current(folder: Path) -> Offer | None:
    try:
        return parse((folder / CURRENT).read_bytes())
    except (OSError, UpdateError):
        return None


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def now() -> datetime:
    return datetime.now(UTC)
