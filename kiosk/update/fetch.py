"""`kiosk update fetch`: take the shop controller's update offer (kiosk.update.offer) when
it is meant for this kiosk and newer than what it runs: download the bundle into the
data partition (resuming an interrupted download with an HTTP Range request), check its
size and sha256 against the offer, then install it into the other slot like any bundle
(its signature is checked there). kiosk-update-fetch.timer runs it every 15 minutes,
spread over the shop's kiosks; the switch follows at the next quiet moment.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kiosk.i18n import _
from kiosk.update import UpdateError, offer
from kiosk.update.manager import Record, version_key

TIMEOUT_S = 30.0  # one HTTP request without progress
BLOCK = 1024 * 1024
SPARE = 64 * 1024**2  # left free on the data partition beside a download


def _get(url: str, start: int = 0):
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - http(s) only


def read_offer(source: str) -> offer.Offer | None:
    """The controller's offer; None when it offers nothing (404)."""
    if not source.startswith(("http://", "https://")):
        raise UpdateError(f"update source {source[:60]!r} is not an http(s) URL")
    url = source.rstrip("/") + "/" + offer.CURRENT
    try:
        with _get(url) as response:
            raw = response.read(offer.MAX_CURRENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise UpdateError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UpdateError(f"{url}: the controller does not answer ({reason})") from None
    return offer.parse(raw)


def download(source: str, wanted: offer.Offer, folder: Path) -> Path:
    """The offered bundle in `folder`, its size and sha256 checked; a `.part` left by an
    interrupted download is resumed (Range), one that does not match is started over."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / wanted.file
    part = folder / f"{wanted.file}.part"
    for stale in folder.glob("kiosk-*.raucb*"):  # an older offer's leftovers: room
        if stale not in (target, part):
            stale.unlink(missing_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > wanted.size:
        part.unlink()
        have = 0
    if shutil.disk_usage(folder).free < wanted.size - have + SPARE:
        need = wanted.size - have
        raise UpdateError(f"{folder}: not enough free space for {wanted.file} ({need} bytes)")
    url = source.rstrip("/") + "/" + wanted.file
    if have < wanted.size:
        _receive(url, part, have, wanted.size)
    if part.stat().st_size != wanted.size:
        raise UpdateError(
            f"{url}: {part.stat().st_size} of {wanted.size} bytes so far; it resumes next time"
        )
    if offer.sha256_of(part) != wanted.sha256:
        part.unlink()
        raise UpdateError(f"{wanted.file}: does not match the offer's sha256 (damaged or tampered)")
    os.replace(part, target)
    return target


def _receive(url: str, part: Path, have: int, size: int) -> None:
    """Append the rest of the file from byte `have` (the whole file if the server does
    not answer the Range request with 206), never past `size`."""
    try:
        with _get(url, have) as response:
            if have and response.status != 206:  # the server sends it whole: start over
                have = 0
            with open(part, "ab" if have else "wb") as out:
                while True:
                    block = response.read(BLOCK)
                    if not block:
                        break
                    if out.tell() + len(block) > size:
                        raise UpdateError(f"{url}: longer than the offer says ({size} bytes)")
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        raise UpdateError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UpdateError(f"{url}: download interrupted ({reason}); it resumes next time") from None


def fetch(
    source: str | None,
    device: str,
    running: str,
    folder: Path,
    record: Record,
    install: Callable[[Path], object],
    now: datetime | None = None,
) -> str:
    """One look at the controller's offer, and what came of it in one line."""
    if not source:
        return _("no update source ([update] source): nothing to fetch")
    now = now or datetime.now(UTC)
    wanted = read_offer(source)
    if wanted is None:
        return _("the controller offers no update")
    if not wanted.for_device(device, now):
        offered = wanted.version
        return _("{version} is offered, not (yet) to {device}", version=offered, device=device)
    if version_key(wanted.version) <= version_key(running):
        return _("running {running}; the offer ({version}) is not newer", running=running,
                 version=wanted.version)  # fmt: skip
    fetched = record.read().get("fetched")
    if isinstance(fetched, dict) and fetched.get("sha256") == wanted.sha256:
        return _("{version} is installed already; it switches at the next quiet moment",
                 version=wanted.version)  # fmt: skip
    path = download(source, wanted, folder)
    try:
        install(path)
    finally:
        path.unlink(missing_ok=True)  # installed into the other slot: the room is the ledger's
    record.update(fetched={"version": wanted.version, "sha256": wanted.sha256,
                           "at": now.isoformat()})  # fmt: skip
    return _("installed {version} from the controller; it switches at the next quiet moment",
             version=wanted.version)  # fmt: skip
