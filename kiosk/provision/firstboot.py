"""First boot on the device (kiosk-firstboot.service): the provisioned bundle on the
boot partition becomes the device's config, identity, Wi-Fi and time zone, and the
secrets are wiped from the boot partition (readable by anyone holding the card).

`root` is "/" on a device; the tests point it at a folder."""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path

from kiosk import files
from kiosk.config import ConfigError, parse

NM_CONNECTION = """[connection]
id={name}
type=wifi
autoconnect=true

[wifi]
mode=infrastructure
ssid={ssid}

[wifi-security]
key-mgmt=wpa-psk
psk={psk}

[ipv4]
method=auto

[ipv6]
method=auto
"""


class FirstBootError(Exception):
    """The bundle is incomplete or invalid; nothing was changed."""


# Units the broker's host runs besides the app, and where their files are.
HOST_UNITS = {
    "mosquitto.service": "/lib/systemd/system/mosquitto.service",
    "kiosk-controller.service": "/etc/systemd/system/kiosk-controller.service",
}
WANTS = Path("etc/systemd/system/multi-user.target.wants")


def _group_id(root: Path, name: str) -> int | None:
    """The group's id in the device's own /etc/group (not the machine running this)."""
    try:
        for line in (root / "etc" / "group").read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name:
                return int(fields[2])
    except (OSError, ValueError):
        pass
    return None


def _install_secret(source: Path, target: Path, root: Path, group: str) -> None:
    """A secret readable by root and the service's group only (0640): written to a
    private file that gets its mode and group before it is renamed into place."""
    gid = _group_id(root, group)
    files.write_private(
        target,
        source.read_bytes(),
        mode=files.GROUP_READ,
        group=gid if os.geteuid() == 0 else None,
        keep_owner=False,
    )


def _keyfile_value(text: str) -> str:
    """A string as GLib's key files (NetworkManager's profiles) read it back unchanged:
    backslashes doubled, a leading space written \\s (control characters are refused
    before this)."""
    text = text.replace("\\", "\\\\")
    return "\\s" + text[1:] if text.startswith(" ") else text


def _keyfile_ssid(ssid: str) -> str:
    """NetworkManager reads an SSID of digits and semicolons as a byte list, and treats
    `;` and `\\` specially: such SSIDs, and any with an outer space, are written as the
    byte list it also accepts (`83;104;111;112;`), others as plain text."""
    if re.fullmatch(r"[^;\\]*", ssid) and ssid == ssid.strip():
        return ssid
    return "".join(f"{byte};" for byte in ssid.encode())


def _check_text(settings: dict, source: Path) -> None:
    for section, values in settings.items():
        for key, value in values.items() if isinstance(values, dict) else []:
            if isinstance(value, str) and any(
                ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value
            ):
                raise FirstBootError(f"{source}: {section}.{key}: a control character")


def _install_broker_host(bundle: Path, root: Path) -> list[str]:
    """The shop broker's config and the controller's, and both units enabled."""
    broker_etc = root / "etc" / "kiosk" / "broker"
    broker_etc.mkdir(parents=True, exist_ok=True)
    for name in ("mosquitto.conf", "acl"):
        shutil.copyfile(bundle / "broker" / name, broker_etc / name)
        (broker_etc / name).chmod(0o644)
    _install_secret(bundle / "broker" / "passwd", broker_etc / "passwd", root, "mosquitto")
    shutil.copyfile(bundle / "controller.toml", root / "etc" / "kiosk" / "controller.toml")
    _install_secret(bundle / "controller.pass", root / "etc/kiosk/controller.pass", root, "kiosk")
    wants = root / WANTS
    wants.mkdir(parents=True, exist_ok=True)
    for unit, path in HOST_UNITS.items():
        link = wants / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)
    return [
        "shop broker -> /etc/kiosk/broker (passwd 0640, group mosquitto)",
        "controller -> /etc/kiosk/controller.toml",
        "enabled " + ", ".join(HOST_UNITS),
    ]


def enabled_units(root: Path) -> list[str]:
    """The host units that first boot enabled (to start them on this very boot)."""
    return [unit for unit in HOST_UNITS if (root / WANTS / unit).is_symlink()]


def apply(boot: Path, root: Path = Path("/")) -> list[str]:
    """Install the bundle; returns what was done, one line each."""
    bundle = boot / "kiosk"
    config_file, settings_file = bundle / "kiosk.toml", bundle / "firstboot.toml"
    if not config_file.exists():
        raise FirstBootError(f"{config_file}: no provisioned config on the boot partition")
    source = config_file
    try:  # refuse a broken bundle before touching /
        text = config_file.read_text(encoding="utf-8")
        config = parse(text, str(config_file))
        source = settings_file
        raw = settings_file.read_text(encoding="utf-8") if settings_file.exists() else ""
        settings = tomllib.loads(raw)
    except ConfigError as exc:
        raise FirstBootError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise FirstBootError(f"{settings_file}: not valid TOML: {exc}") from None
    except RecursionError:
        raise FirstBootError(f"{settings_file}: not valid TOML: nested too deeply") from None
    except UnicodeDecodeError:
        raise FirstBootError(f"{source}: not UTF-8 text") from None
    _check_text(settings, settings_file)
    done = []
    etc = root / "etc"
    kiosk_etc = etc / "kiosk"
    kiosk_etc.mkdir(parents=True, exist_ok=True)
    (kiosk_etc / "kiosk.toml").write_text(text)
    done.append("config -> /etc/kiosk/kiosk.toml")
    password = bundle / "mqtt.pass"
    if password.exists():
        _install_secret(password, kiosk_etc / "mqtt.pass", root, "kiosk")
        done.append("broker password -> /etc/kiosk/mqtt.pass (0640, group kiosk)")
    if (bundle / "broker").is_dir():
        done += _install_broker_host(bundle, root)
    host = settings.get("host", {})
    hostname = host.get("hostname", config.device.id)
    (etc / "hostname").write_text(hostname + "\n")
    (etc / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost\n"
    )
    done.append(f"hostname {hostname}")
    zone = host.get("timezone", "UTC")
    localtime = etc / "localtime"
    if localtime.is_symlink() or localtime.exists():
        localtime.unlink()
    localtime.symlink_to(f"/usr/share/zoneinfo/{zone}")
    (etc / "timezone").write_text(zone + "\n")
    done.append(f"time zone {zone}")
    wifi = settings.get("wifi")
    if wifi:
        connections = etc / "NetworkManager" / "system-connections"
        connections.mkdir(parents=True, exist_ok=True)
        profile = connections / "kiosk-wifi.nmconnection"
        text = NM_CONNECTION.format(
            name=_keyfile_value(wifi["ssid"]),
            ssid=_keyfile_ssid(wifi["ssid"]),
            psk=_keyfile_value(wifi["psk"]),
        )
        files.write_private(profile, text)  # 0600: NetworkManager ignores readable ones
        regdom = etc / "default" / "crda"
        regdom.parent.mkdir(parents=True, exist_ok=True)
        regdom.write_text(f"REGDOMAIN={wifi.get('country', 'DE')}\n")
        done.append(f"Wi-Fi {wifi['ssid']} (NetworkManager)")
    shutil.rmtree(bundle)  # the password and the Wi-Fi key must not stay on the card
    done.append("secrets removed from the boot partition")
    return done
