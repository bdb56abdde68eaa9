"""What a technician and the boot check do with updates: install a bundle into the
other slot, switch at a quiet moment, mark the new version good once it sells, or go
back; and the record of it on the data partition (both slots read and write it).

The record (update.json beside the ledger):
  installed  {"slot", "version", "at"}: written into the other slot, not booted yet
  trial      {"slot", "version", "from_slot", "from_version", "at"}: switched to it
  last       {"version", "result": "ok"|"rolled_back", "reason", "at"}: how it ended
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kiosk.update import UpdateError, bundle, tryboot
from kiosk.update.settings import UpdateConfig

APP_UNIT = "kiosk.service"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Record:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"damaged": True}
        return data if isinstance(data, dict) else {}

    def write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tryboot.write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def update(self, **changes) -> dict:
        data = self.read()
        data.pop("damaged", None)
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self.write(data)
        return data


@dataclass(frozen=True)
class AppState:
    """kiosk.service as systemd sees it: active only after READY=1 (Type=notify)."""

    active: bool
    restarts: int
    active_for: float  # seconds since it last became active (0 if not active)


def app_state(unit: str = APP_UNIT) -> AppState:
    result = subprocess.run(
        ["systemctl", "show", unit, "-p", "ActiveState", "-p", "NRestarts",
         "-p", "ActiveEnterTimestampMonotonic"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    fields = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
    active = fields.get("ActiveState") == "active"
    entered = int(fields.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
    return AppState(
        active=active,
        restarts=int(fields.get("NRestarts") or 0),
        active_for=max(0.0, time.monotonic() - entered) if active and entered else 0.0,
    )


def decide(
    backend: tryboot.Backend, app: AppState, elapsed: float, settings: UpdateConfig
) -> tuple[str, str]:
    """(action, reason) for this boot:
    "fell-back"  a slot was on trial but the firmware started the committed one: the
                 trial boot failed before the check could run (or never happened)
    "good"       this is the trial boot and the app sold (READY, then stable)
    "bad"        this is the trial boot and the app did not get there, or kept crashing
    "wait"       this is the trial boot and it is too early to tell
    "none"       a normal boot with nothing on trial"""
    state, booted = backend.state(), backend.current()
    if state.pending and booted != state.pending and not backend.tryboot():
        return "fell-back", (
            f"slot {state.pending} did not come up for its trial boot (it crashed, hung or "
            f"was switched off before it sold, or the tryboot flag was not set)"
        )
    if state.pending != booted:  # (the pending slot booted without the flag: judged alike)
        return "none", ""
    if app.restarts > settings.max_restarts:
        return "bad", f"the app restarted {app.restarts} times (limit {settings.max_restarts})"
    if app.active and app.active_for >= settings.stable_seconds:
        return "good", f"selling for {app.active_for:.0f} s with {app.restarts} restart(s)"
    if not app.active and elapsed > settings.ready_timeout:
        return "bad", f"no selling screen within {settings.ready_timeout:.0f} s"
    return "wait", ""


class Manager:
    def __init__(
        self,
        settings: UpdateConfig,
        backend: tryboot.Backend | None = None,
        run: Callable[[list[str]], subprocess.CompletedProcess] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.backend = backend or tryboot.Backend()
        self.record = Record(settings.state_file)
        self._run = run or _run
        self.log = log

    def rauc(self, *args: str) -> subprocess.CompletedProcess:
        command = [bundle.rauc()]
        if os.environ.get("KIOSK_RAUC_CONF"):
            command.append(f"--conf={os.environ['KIOSK_RAUC_CONF']}")
        result = self._run([*command, *args])
        if result.returncode != 0:
            text = bundle.last_line((result.stderr or "") + (result.stdout or ""))
            if "d-bus" in text.lower() or "dbus" in text.lower():
                text = f"RAUC's service does not answer (systemctl status rauc): {text}"
            raise UpdateError(f"rauc {args[0]}: {text or 'failed'}")
        return result

    # technician's commands
    def status(self) -> dict:
        booted = self.backend.current()
        state = self.backend.state()
        versions = self.slot_versions()
        return {
            "booted": booted,
            "booted_version": versions.get(booted, ""),
            "other": tryboot.other(booted),
            "other_version": versions.get(tryboot.other(booted), ""),
            "other_state": state.states[tryboot.other(booted)],
            "committed": self.backend.committed(),
            "pending": state.pending,
            "trial_boot": self.backend.tryboot(),
            **{k: v for k, v in self.record.read().items() if k in ("installed", "trial", "last")},
        }

    def slot_versions(self) -> dict[str, str]:
        """Bootname -> the version RAUC installed there (from its slot status)."""
        try:
            out = self.rauc("status", "--detailed", "--output-format=json").stdout
            data = json.loads(out)
        except (UpdateError, ValueError):
            return {}
        found = {}
        for entry in data.get("slots", []):
            for slot in entry.values() if isinstance(entry, dict) else ():
                name = slot.get("bootname")
                version = ((slot.get("slot_status") or {}).get("bundle") or {}).get("version")
                if name and version:
                    found[name] = version
        return found

    def install(self, path: Path, allow_older: bool = False) -> bundle.BundleInfo:
        """Check the bundle, write it into the other slot (selling goes on) and leave the
        switch for the next quiet moment. A bundle no newer than the running version is
        refused unless allow_older: an old signed bundle must not be a way back to a
        version with a known hole (a rollback to the other slot is `rollback`)."""
        info = bundle.check(path, self.settings.keyring)
        running = self.slot_versions().get(self.backend.current()) or _app_version()
        if not allow_older and version_key(info.version) <= version_key(running):
            raise UpdateError(
                f"{Path(path).name}: version {info.version} is not newer than the running "
                f"{running} (--allow-older to install it anyway)"
            )
        started = time.monotonic()
        self.rauc("install", str(path))
        target = self.backend.state().pending
        if not target:
            raise UpdateError("rauc installed the bundle but no slot is waiting to be tried")
        self.record.update(installed={"slot": target, "version": info.version, "at": now_text()})
        self.snapshot()
        self.log(
            f"kiosk-update: {info.version} installed into slot {target} in "
            f"{time.monotonic() - started:.1f} s; switch at the next quiet moment"
        )
        return info

    def switch(self, still_quiet: Callable[[], tuple[bool, str]] | None = None) -> list[str]:
        """Reboot into the installed slot once (tryboot); the boot check commits it.

        `still_quiet()` (the quiet-moment switch) is asked again just before anything is
        written: reading the slots' versions through RAUC takes seconds (16 s in the
        qemu test), long enough for a customer to start scanning. Not quiet any more:
        nothing is changed and [] is returned."""
        installed = self.record.read().get("installed")
        pending = self.backend.state().pending
        if not pending:
            raise UpdateError("nothing installed to switch to")
        booted = self.backend.current()
        versions = self.slot_versions()
        if still_quiet is not None:
            quiet, why = still_quiet()
            if not quiet:
                self.log(f"kiosk-update: not switching after all: {why}")
                return []
        self.record.update(
            installed=None,
            trial={
                "slot": pending,
                "version": (installed or {}).get("version") or versions.get(pending, ""),
                "from_slot": booted,
                "from_version": versions.get(booted, ""),
                "at": now_text(),
                "switch_started": time.time(),
            },
        )
        command = self.backend.request_tryboot()
        self.log(f"kiosk-update: switching to slot {pending}: {' '.join(command)}")
        result = self._run(command)
        if result.returncode != 0:  # seen in qemu: the reboot refused, nothing said
            reason = bundle.last_line((result.stderr or "") + (result.stdout or ""))
            raise UpdateError(f"the reboot into slot {pending} was refused: {reason or 'failed'}")
        return command

    def rollback(self) -> list[str]:
        """Back to the other slot's version, if that slot is good: tried once like an
        update, committed once it sells."""
        booted = self.backend.current()
        back = tryboot.other(booted)
        if self.backend.get_state(back) != "good":
            raise UpdateError(f"slot {back} is marked bad: nothing good to go back to")
        self.rauc("status", "mark-active", "other")
        return self.switch()

    # the boot check (kiosk-update-check.service, every boot)
    def boot_check(
        self, probe: Callable[[], AppState] = app_state, sleep: Callable[[float], None] = time.sleep
    ) -> str:
        started = time.monotonic()
        while True:
            action, reason = decide(
                self.backend, probe(), time.monotonic() - started, self.settings
            )
            if action != "wait":
                break
            sleep(2)
        trial = self.record.read().get("trial") or {}
        version = trial.get("version") or self.backend.state().pending or "?"
        if action == "good":
            self.rauc("status", "mark-good", "booted")
            took = time.time() - float(trial.get("switch_started") or time.time())
            self.record.update(
                trial=None,
                last={"version": version, "result": "ok", "reason": reason, "at": now_text(),
                      "switch_seconds": round(took, 1)},
            )  # fmt: skip
            self.log(f"kiosk-update: {version} is good ({reason}); switch took {took:.0f} s")
        elif action in ("bad", "fell-back"):
            if action == "bad":
                self.rauc("status", "mark-bad", "booted")
            else:
                self.backend.set_state(self.backend.state().pending, good=False)
            self.record.update(
                trial=None,
                last={"version": version, "result": "rolled_back", "reason": reason,
                      "at": now_text()},
            )  # fmt: skip
            self.log(f"kiosk-update: update to {version} FAILED, rolled back: {reason}")
            if action == "bad":
                self._run(["systemctl", "reboot"])  # the firmware starts the committed slot
                return action
        self.snapshot()
        return action

    def snapshot(self) -> dict:
        """Both slots' versions into the record, for the diagnostics screen: the app runs
        as the kiosk user, who can neither ask RAUC nor read the boot partition."""
        booted = self.backend.current()
        slots = {
            "booted": booted,
            "committed": self.backend.committed(),
            "versions": self.slot_versions(),
            "states": self.backend.state().states,
            "at": now_text(),
        }
        self.record.update(slots=slots)
        return slots


def version_key(version: str) -> tuple:
    """1.10.0 after 1.9.2; numbers compare as numbers, other parts as text after them."""
    parts = version.replace("-", ".").replace("+", ".").split(".")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _app_version() -> str:
    from kiosk import __version__  # noqa: PLC0415

    return __version__


def status_fields(record_path: Path) -> dict[str, str]:
    """What the kiosk's MQTT status says about updates (kiosk.mqtt.topics.status_extras,
    "update"): the booted slot and the other slot's version from the last snapshot, and
    how the last update ended (its version, ok or rolled_back, why). Empty on a kiosk
    that never had an update record (no A/B slots: a development machine)."""
    record = Record(record_path).read()
    fields: dict[str, str] = {}
    slots = record.get("slots")
    if isinstance(slots, dict) and isinstance(slots.get("booted"), str):
        booted = slots["booted"]
        fields["slot"] = booted
        versions = slots.get("versions") if isinstance(slots.get("versions"), dict) else {}
        other = [str(v) for k, v in versions.items() if k != booted and v]
        if other:
            fields["other"] = other[0]
    last = record.get("last")
    if isinstance(last, dict) and last.get("result") in ("ok", "rolled_back"):
        fields["version"] = str(last.get("version", ""))
        fields["result"] = last["result"]
        if last.get("reason"):
            fields["reason"] = str(last["reason"])
    return {key: value for key, value in fields.items() if value}


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=3600)
