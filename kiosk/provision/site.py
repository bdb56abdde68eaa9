"""Site files and device lists, checked whole before anything is written.

Site file (TOML):

    [site]      store = "store-042"; timezone = "Europe/Berlin"
    [broker]    host = "192.0.2.10"; port = 1883; tls = false; web_port = 8080
                device = "till-01"   (optional: the listed device that runs the broker
                                      and the shop controller, at that fixed address)
    [wifi]      ssid = "ShopNet"; psk = "..."; country = "DE"     (optional)
    [defaults]  any kiosk.toml sections every device gets ([money], [barcodes], ...)

Device list (CSV, header required): device, role, printer, scanner, keymap, drawer
    printer: usb:VID:PID | network:HOST[:PORT] | serial:/dev/ttyS0 | file:/dev/usb/lp0 | none
    drawer:  gpio[:PIN] | printer | none
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta, field

from kiosk import textfile
from kiosk.config import ConfigError, parse
from kiosk.drivers import keymaps
from kiosk.mqtt.broker import CONTROLLER_USER, reserved
from kiosk.schema import After, Before, Invalid, Section, convert, lax_bool, lax_int

ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
BACKSLASH = chr(92)
COLUMNS = ("device", "role", "printer", "scanner", "keymap", "drawer")


def control_character(text: str) -> str | None:
    """The first control character in `text` (C0, DEL, C1: newline, NUL, escape ...)
    as U+XXXX, or None. Such a character in an SSID, a key or a device field would
    write a bundle first boot refuses, or a Wi-Fi profile NetworkManager misreads."""
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"U+{code:04X}"
    return None


def _decode(data: bytes, path: Path) -> str:
    try:
        return textfile.decode(data, str(path))
    except textfile.TextFileError as exc:
        raise ProvisionError(str(path), [str(exc).removeprefix(f"{path}: ")]) from None


class ProvisionError(Exception):
    """A site file or device list that cannot be used; `problems` lists each."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class SiteSection(Section):
    store: Annotated[str, Meta(pattern=ID)]
    timezone: Annotated[str, After(_known_zone)] = "UTC"


# A port may be written as text or 1883.0 (as site files always could).
SitePort = Annotated[int, Before(lax_int), Meta(ge=1, le=65535)]


class BrokerSection(Section):
    host: Annotated[str, Meta(min_length=1)]
    port: SitePort = 1883
    tls: Annotated[bool, Before(lax_bool)] = False
    # The kiosk that hosts broker + controller.
    device: Annotated[str, Meta(pattern=ID)] | None = None
    # The controller's web view on that kiosk (stock, kiosks, alerts, KPIs), on the shop
    # LAN; 0 turns it off.
    web_port: Annotated[int, Before(lax_int), Meta(ge=0, le=65535)] = 8080


def _ssid_fits(value: str) -> str:
    if len(value.encode()) > 32:
        raise ValueError("at most 32 bytes as UTF-8 (the limit of an SSID)")
    return value


def _wpa_passphrase(value: str) -> str:
    # WPA2/WPA3-Personal: 8-63 printable ASCII characters, or 64 hex digits.
    if re.fullmatch(r"[ -~]{8,63}|[0-9A-Fa-f]{64}", value) is None:
        raise ValueError("a Wi-Fi key is 8-63 printable ASCII characters or 64 hex digits")
    return value


class WifiSection(Section):
    strip_text = False  # spaces are part of an SSID or passphrase: kept as written

    ssid: Annotated[str, Meta(min_length=1), After(_ssid_fits)]
    psk: Annotated[str, After(_wpa_passphrase)]
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] = "DE"


class Site(Section):
    site: SiteSection
    broker: BrokerSection
    wifi: WifiSection | None = None
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Device:
    line: int
    device: str
    role: str
    printer: dict[str, Any]
    scanner: str
    keymap: str
    drawer: dict[str, Any]


def load_site(path: Path) -> Site:
    try:
        text = _decode(path.read_bytes(), path)
    except OSError as exc:
        raise ProvisionError(str(path), [f"cannot read: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(str(path), [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ProvisionError(str(path), ["not valid TOML: nested too deeply"]) from None
    problems = [
        f"{_line_of(text, loc)}{'.'.join(loc)}: control character {char} is not allowed"
        for loc, char in _control_characters(data, [])
    ]
    if problems:
        raise ProvisionError(str(path), problems)
    try:
        site = convert(data, Site)
    except Invalid as exc:
        problems = [f"{_line_of(text, list(p.loc))}{p.key}: {p.reason}" for p in exc.problems]
        raise ProvisionError(str(path), problems) from None
    for section in site.defaults:
        if section in ("device", "mqtt", "ledger"):
            raise ProvisionError(str(path), [f"defaults.{section}: set per site or device"])
    return site


def _control_characters(value: Any, loc: list[str]) -> list[tuple[list[str], str]]:
    """(key path, U+XXXX) of every key or string in the site file with a control
    character; a list item is named by its key (the line is the key's)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            char = control_character(key)
            if char:
                found.append(([*loc, key], char))
            found += _control_characters(item, [*loc, key])
    elif isinstance(value, list):
        for item in value:
            found += _control_characters(item, loc)
    elif isinstance(value, str):
        char = control_character(value)
        if char:
            found.append((loc, char))
    return found


def check_broker_device(site: Site, devices: list[Device], path: Path, devices_path: Path) -> None:
    """The device named to host the broker must be in the list, and the broker it runs
    is plain MQTT on the shop network (a TLS broker needs its certificates on a box)."""
    host = site.broker.device
    if host is None:
        return
    where = _line_of(_decode(path.read_bytes(), path), ["broker", "device"])
    if host not in {device.device for device in devices}:
        raise ProvisionError(str(path), [f"{where}broker.device: {host} is not in {devices_path}"])
    if site.broker.tls:
        raise ProvisionError(
            str(path),
            [f"{where}broker.device: a kiosk hosts a plain broker only; for TLS run the broker "
             "on a box with its certificates ('kiosk broker config --help') and drop device"],
        )  # fmt: skip


def _line_of(text: str, loc: list[str]) -> str:
    """'line N: ' for a key of the site file (the key's own line, else its table's)."""
    *tables, key = loc if len(loc) > 1 else (loc + [""])
    header = "[" + ".".join(tables) + "]" if tables else None
    in_table = header is None
    found = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_table = stripped == header
            if in_table and not found:
                found = f"line {number}: "
        elif in_table and key and re.match(rf"{re.escape(key)}\s*=", stripped):
            return f"line {number}: "
    return found


def _printer(spec: str) -> dict[str, Any]:
    kind, _, rest = spec.partition(":")
    if kind == "none" and not rest:
        return {"kind": "none"}
    if kind == "usb" and re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", rest):
        return {"kind": "usb", "usb": rest.lower()}
    if kind == "network" and rest:
        host, _, port = rest.partition(":")
        return {"kind": "network", "host": host, **({"port": int(port)} if port.isdigit() else {})}
    if kind in ("serial", "file") and rest.startswith("/dev/"):
        return {"kind": kind, "device": rest}
    raise ValueError(
        f"printer {spec!r}: use usb:VID:PID, network:HOST[:PORT], serial:/dev/..., "
        "file:/dev/... or none"
    )


def _drawer(spec: str) -> dict[str, Any]:
    kind, _, pin = spec.partition(":")
    if kind == "gpio":
        if pin and not re.fullmatch(r"[0-9]{1,2}", pin):
            raise ValueError(f"drawer {spec!r}: the GPIO pin must be a number from 0 to 27")
        return {"kind": "gpio", **({"pin": int(pin)} if pin else {})}
    if kind in ("printer", "none") and not pin:
        return {"kind": kind}
    raise ValueError(f"drawer {spec!r}: use gpio[:PIN], printer or none")


def check_all(site: Site, path: Path) -> tuple[list[Device], dict[str, str]]:
    """Every row of the device list checked, and every device's config built and
    validated, before anything is written; all problems reported at once, by line."""
    devices, problems = _read_devices(path)
    configs: dict[str, str] = {}
    for device in devices:
        try:
            configs[device.device] = device_config(site, device)
        except ValueError as exc:
            problems.append((device.line, f"line {device.line}: {exc}"))
    if problems:
        ordered = [text for _, text in sorted(problems, key=lambda p: p[0])]
        raise ProvisionError(str(path), ordered)
    return devices, configs


def _read_devices(path: Path) -> tuple[list[Device], list]:
    try:
        text = _decode(path.read_bytes(), path)
    except OSError as exc:
        raise ProvisionError(str(path), [f"cannot read: {exc}"]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise ProvisionError(str(path), ["line 1: the file is empty (needs a header row)"])
    names = [c.strip() for c in reader.fieldnames]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise ProvisionError(str(path), [f"line 1: column(s) named twice: {', '.join(twice)}"])
    unknown = [c for c in reader.fieldnames if c.strip() not in COLUMNS]
    if unknown or "device" not in [c.strip() for c in reader.fieldnames]:
        raise ProvisionError(
            str(path), [f"line 1: columns must be from {', '.join(COLUMNS)} and include device"]
        )
    devices: list[Device] = []
    problems: list = []
    seen: dict[str, int] = {}
    rows: list[tuple[int, dict]] = []
    try:
        for raw in reader:
            rows.append((reader.line_num, raw))
    except csv.Error as exc:  # e.g. a field past the csv module's 128 KiB limit
        problem = f"line {reader.line_num}: unreadable CSV: {exc}"
        raise ProvisionError(str(path), [problem]) from None
    for line, raw in rows:
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
        try:
            for column, value in row.items():
                char = control_character(value)
                if char:
                    raise ValueError(f"{column}: control character {char} is not allowed")
            device = row.get("device", "")
            if not re.fullmatch(ID, device):
                raise ValueError(f"device {device!r} must be 1-32 letters, digits, - or _")
            if reserved(device):
                raise ValueError(
                    f"device {device!r} is reserved (the shop controller's broker user)"
                )
            if device.casefold() in seen:  # bundles land on FAT: TILL-01 is till-01 there
                first = seen[device.casefold()]
                raise ValueError(f"duplicate device {device} (first on line {first})")
            role = row.get("role") or "self-checkout"
            if role not in ("self-checkout", "staffed", "mobile-cart"):
                raise ValueError(f"role {role!r} must be self-checkout, staffed or mobile-cart")
            keymap = row.get("keymap") or "us"
            try:  # any layout(variant) this machine's xkb-data has
                keymaps.check(keymap)
            except keymaps.KeymapError as exc:
                raise ValueError(f"keymap {keymap!r}: {exc}") from None
            devices.append(
                Device(
                    line=line,
                    device=device,
                    role=role,
                    printer=_printer(row.get("printer") or "none"),
                    scanner=row.get("scanner", ""),
                    keymap=keymap,
                    drawer=_drawer(row.get("drawer") or "gpio"),
                )
            )
            seen[device.casefold()] = line
        except ValueError as exc:
            problems.append((line, f"line {line}: {exc}"))
    if not devices and not problems:
        problems.append((0, "no devices listed"))
    return devices, problems


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    text = str(value).replace(BACKSLASH, BACKSLASH * 2).replace('"', BACKSLASH + '"')
    text = "".join(f"{BACKSLASH}u{ord(c):04X}" if control_character(c) else c for c in text)
    return f'"{text}"'


def render_toml(sections: dict[str, dict[str, Any]]) -> str:
    out = ["# Written by 'kiosk provision build'."]
    for name, values in sections.items():
        out.append(f"\n[{name}]")
        out += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(out) + "\n"


def hosts_broker(site: Site, device: Device) -> bool:
    return site.broker.device == device.device


def device_config(site: Site, device: Device) -> str:
    """The kiosk.toml for one device, checked by the same parser the kiosk uses.
    The broker's own device reaches it on loopback: no shop network needed to sell."""
    sections: dict[str, dict[str, Any]] = {
        "device": {"id": device.device, "store": site.site.store, "role": device.role},
        "ledger": {"path": "/var/lib/kiosk/ledger.db"},
        "mqtt": {
            "host": "127.0.0.1" if hosts_broker(site, device) else site.broker.host,
            "port": site.broker.port,
            "username": device.device,
            "password_file": "/etc/kiosk/mqtt.pass",
            "tls": site.broker.tls,
        },
        "scanner": {"match": device.scanner, "keymap": device.keymap},
        "printer": device.printer,
        "drawer": device.drawer,
    }
    if site.broker.device and site.broker.web_port:  # updates from the controller's web view
        host = "127.0.0.1" if hosts_broker(site, device) else site.broker.host
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        sections["update"] = {"source": f"http://{host}:{site.broker.web_port}/updates/"}
    for name, values in site.defaults.items():
        sections.setdefault(name, {}).update(values)
    text = render_toml(sections)
    try:
        parse(text, f"{device.device} (device list line {device.line})")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return text


def firstboot_settings(site: Site, device: Device) -> str:
    sections: dict[str, dict[str, Any]] = {
        "host": {"hostname": device.device, "timezone": site.site.timezone}
    }
    if site.wifi:
        sections["wifi"] = msgspec.structs.asdict(site.wifi)
    return render_toml(sections)


def controller_config(site: Site, device: Device, database: str) -> str:
    """The controller.toml for the device that hosts the broker: the shop's stock in
    its own database on the data partition, talking to the broker on loopback."""
    sections: dict[str, dict[str, Any]] = {
        "device": {"id": device.device, "store": site.site.store, "role": device.role},
        "mqtt": {
            "host": "127.0.0.1",
            "port": site.broker.port,
            "username": CONTROLLER_USER,
            "password_file": "/etc/kiosk/controller.pass",
        },
        "controller": {"database": database},
    }
    if site.broker.web_port:
        sections["controller"] |= {"web_port": site.broker.web_port, "web_host": "0.0.0.0"}  # noqa: S104 - the shop LAN
    text = render_toml(sections)
    parse(text, f"controller on {device.device}")  # a bug here, not a user mistake
    return text
