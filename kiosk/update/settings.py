"""The [update] section of kiosk.toml (kiosk.config.Config.update)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

GUARD_SECONDS = 15 * 60  # kiosk-update-guard.timer ends an undecided trial then
Whole = Annotated[int, Strict()]
Seconds = Annotated[float, Strict()]


class UpdateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    # The certificates a bundle's signature must chain to (on the image, read-only).
    keyring: Path = Path("/etc/rauc/keyring.pem")
    # The switch to an installed update happens at the next quiet moment: no customer
    # session open and no sale for idle_minutes, or at switch_hour (local, 0-23) whatever
    # the kiosk is doing, if set. Empty: quiet moments only.
    idle_minutes: Whole = Field(2, ge=0, le=24 * 60)
    switch_hour: Whole | None = Field(None, ge=0, le=23)
    # The new version must show its selling screen (READY) within ready_timeout, then
    # stay up stable_seconds with at most max_restarts restarts of the app, or the
    # kiosk goes back to the version it came from.
    ready_timeout: Seconds = Field(300.0, gt=0, le=3600)
    stable_seconds: Seconds = Field(120.0, ge=0, le=3600)
    max_restarts: Whole = Field(3, ge=0, le=100)
    # Where the kiosk's update record lives (the data partition).
    state_file: Path = Path("/var/lib/kiosk/update.json")
    # The shop controller's update offer (kiosk update fetch, every 15 minutes): its web
    # view's /updates/ folder, e.g. "http://192.0.2.10:8080/updates/" (provisioning sets
    # it); empty: updates come from a USB stick or `kiosk update install` only.
    source: str | None = Field(None, pattern=r"^https?://[^\s]{1,200}$")
    # Where a fetched bundle waits for its install (the data partition; deleted after).
    download_dir: Path = Path("/var/lib/kiosk/updates")

    @model_validator(mode="after")
    def _decided_before_the_guard(self) -> UpdateConfig:
        if self.ready_timeout + self.stable_seconds > GUARD_SECONDS - 60:
            raise ValueError(
                f"ready_timeout + stable_seconds must stay under {GUARD_SECONDS - 60} s "
                "(the trial guard reboots an undecided trial after 15 minutes)"
            )
        return self
