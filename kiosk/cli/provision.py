"""`kiosk provision ...`: SD cards and images for a shop's devices."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import UserError, config_option, say


@click.group("provision")
def provision_group() -> None:
    """Give SD cards their identity: config, broker credentials, Wi-Fi, time zone."""


def _provision_errors(fn):
    import functools  # noqa: PLC0415

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kiosk.provision.card import CardError  # noqa: PLC0415
        from kiosk.provision.firstboot import FirstBootError  # noqa: PLC0415
        from kiosk.provision.site import ProvisionError  # noqa: PLC0415

        try:
            return fn(*args, **kwargs)
        except (ProvisionError, CardError, FirstBootError) as exc:
            raise UserError(i18n.text_of(exc)) from None

    return wrapper


@provision_group.command("build")
@config_option
@click.argument("site_file", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("devices_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--broker-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The shop broker's config folder (credentials go to its passwd).")  # fmt: skip
@_provision_errors
def provision_build(site_file: Path, devices_file: Path, out: Path, broker_dir: Path) -> None:
    """Check the site file and device list whole, then write one bundle per device."""
    from tqdm import tqdm  # noqa: PLC0415

    from kiosk.mqtt import broker  # noqa: PLC0415
    from kiosk.provision import bundle as bundle_mod  # noqa: PLC0415
    from kiosk.provision import site as site_mod  # noqa: PLC0415

    site = site_mod.load_site(site_file)
    devices, configs = site_mod.check_all(site, devices_file)
    site_mod.check_broker_device(site, devices, site_file, devices_file)

    def progress(items):
        return tqdm(items, desc="provisioning", unit="device")

    try:
        bundle_mod.write_bundles(site, devices, configs, out, broker_dir, progress)
    except broker.BrokerError as exc:
        raise UserError(i18n.text_of(exc)) from None
    say(
        i18n._(
            "{count} device bundle(s) in {out}; credentials in {passwd}",
            count=len(devices),
            out=out,
            passwd=broker_dir / "passwd",
        )
    )
    if site.broker.device:
        say(i18n._("{device} runs the shop broker and controller", device=site.broker.device))


@provision_group.command("write")
@config_option
@click.argument("bundle", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("target", type=click.Path(path_type=Path, dir_okay=False))
@_provision_errors
def provision_write(bundle: Path, target: Path) -> None:
    """Write one device's bundle to a flashed card (/dev/sdX) or an image file."""
    from kiosk.provision import card  # noqa: PLC0415

    card.write_bundle(bundle, target)
    click.echo(f"{bundle.name} -> {target}")


@provision_group.command("images")
@config_option
@click.argument("bundles", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("base_image", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@_provision_errors
def provision_images(bundles: Path, base_image: Path, dest: Path) -> None:
    """One ready-to-flash image per device bundle, from a built base image."""
    import subprocess  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    from kiosk.provision import card  # noqa: PLC0415

    card.boot_partition(base_image)  # refuse a wrong base image before copying anything
    dest.mkdir(parents=True, exist_ok=True)
    folders = sorted(p for p in bundles.iterdir() if (p / "kiosk.toml").exists())
    if not folders:
        raise UserError(
            i18n._(
                "{bundles}: no device bundles (run 'kiosk provision build' first)", bundles=bundles
            )
        )
    for folder in tqdm(folders, desc="images", unit="image"):
        image = dest / f"{folder.name}.img"
        subprocess.run(["cp", "--sparse=always", str(base_image), str(image)], check=True)
        card.write_bundle(folder, image)
    say(i18n._("{count} image(s) in {dest}", count=len(folders), dest=dest))


@provision_group.command("verify")
@config_option
@click.argument("target", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_provision_errors
def provision_verify(target: Path) -> None:
    """Report what a card or image holds (secrets masked); exit 1 if incomplete."""
    import tomllib  # noqa: PLC0415

    from kiosk.config import parse  # noqa: PLC0415
    from kiosk.provision import card  # noqa: PLC0415

    for part in card.partitions(target):
        kind = "FAT boot" if part.is_fat else f"type {part.type:#04x}"
        say(
            i18n._(
                "partition {number}: {kind}, {mib} MiB",
                number=str(part.number),
                kind=kind,
                mib=part.size // (1024 * 1024),
            )
        )
    files = card.read_bundle(target)
    if "kiosk.toml" not in files:
        say(i18n._("no kiosk bundle on the boot partition (not provisioned, or already booted)"))
        raise click.exceptions.Exit(1)
    config = parse(files["kiosk.toml"], f"{target}:/kiosk/kiosk.toml")
    say(
        i18n._(
            "device {id} ({role}) at {store}; broker {host}:{port} as {username}",
            id=config.device.id,
            role=config.device.role,
            store=config.device.store,
            host=config.mqtt.host,
            port=str(config.mqtt.port),
            username=config.mqtt.username,
        )
    )
    say(
        i18n._(
            "printer {printer}, drawer {drawer}, scanner {scanner} ({keymap})",
            printer=config.printer.kind,
            drawer=config.drawer.kind,
            scanner=config.scanner.match or "-",
            keymap=config.scanner.keymap,
        )
    )
    click.echo("broker password: " + ("present" if files.get("mqtt.pass") else "MISSING"))
    if "broker/mosquitto.conf" in files:
        users = [ln.split(":")[0] for ln in files.get("broker/passwd", "").split() if ":" in ln]
        missing = "" if files.get("controller.pass") else ": controller password MISSING"
        say(
            i18n._(
                "hosts the shop broker ({count} users) and the controller{missing}",
                count=len(users),
                missing=missing,
            )
        )
    settings = tomllib.loads(files.get("firstboot.toml", ""))
    host = settings.get("host", {})
    wifi = settings.get("wifi")
    click.echo(f"hostname {host.get('hostname', '-')}, time zone {host.get('timezone', '-')}, "
               + (f"Wi-Fi {wifi['ssid']} (key ********)" if wifi else "no Wi-Fi"))  # fmt: skip
    if not files.get("mqtt.pass") or (
        "broker/mosquitto.conf" in files and not files.get("controller.pass")
    ):
        raise click.exceptions.Exit(1)


@provision_group.command("firstboot")
@config_option
@click.option("--boot", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default="/")
@_provision_errors
def provision_firstboot(boot: Path, root: Path) -> None:
    """On the device's first boot: install the bundle and wipe its secrets."""
    import subprocess  # noqa: PLC0415

    from kiosk.provision import firstboot  # noqa: PLC0415

    for line in firstboot.apply(boot, root):
        click.echo(line)
    enabled = firstboot.enabled_units(root)
    if enabled and root == Path("/"):
        # Enabled for every later boot; started now, once this unit has finished.
        subprocess.run(["systemctl", "--no-block", "start", *enabled], check=False, timeout=60)
