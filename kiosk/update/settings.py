"""The [update] section of kiosk.toml (kiosk.config.Config.update)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from msgspec import Meta

from kiosk.schema import Section

GUARD_SECONDS = 15 * 60  # kiosk-update-guard.timer ends an undecided trial then


class UpdateConfig(Section):
    # The certificates a bundle's signature must chain to (on the image, read-only).
    keyring: Path = Path("/etc/rauc/keyring.pem")
    # The switch to an installed update happens at the next quiet moment: no customer
    # session open and no sale for idle_minutes, or at switch_hour (local, 0-23) whatever
    # the kiosk is doing, if set. Empty: quiet moments only.
    idle_minutes: Annotated[int, Meta(ge=0, le=24 * 60)] = 2
    switch_hour: Annotated[int, Meta(ge=0, le=23)] | None = None
    # The new version must show its selling screen (READY) within ready_timeout, then
    # stay up stable_seconds with at most max_restarts restarts of the app, or the
    # kiosk goes back to the version it came from.
    ready_timeout: Annotated[float, Meta(gt=0, le=3600)] = 300.0
    stable_seconds: Annotated[float, Meta(ge=0, le=3600)] = 120.0
    max_restarts: Annotated[int, Meta(ge=0, le=100)] = 3
    # Where the kiosk's update record lives (the data partition).
    state_file: Path = Path("/var/lib/kiosk/update.json")
    # The shop controller's update offer (kiosk update fetch, every 15 minutes): its web
    # view's /updates/ folder, e.g. "http://192.0.2.10:8080/updates/" (provisioning sets
    # it); empty: updates come from a USB stick or `kiosk update install` only.
    source: Annotated[str, Meta(pattern=r"^https?://[^\s]{1,200}$")] | None = None
    # Where a fetched bundle waits for its install (the data partition; deleted after).
    download_dir: Path = Path("/var/lib/kiosk/updates")

    def __post_init__(self) -> None:
        if self.ready_timeout + self.stable_seconds > GUARD_SECONDS - 60:
            raise ValueError(
                f"ready_timeout + stable_seconds must stay under {GUARD_SECONDS - 60} s "
                "(the trial guard reboots an undecided trial after 15 minutes)"
            )
