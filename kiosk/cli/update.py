"""`kiosk update status|install|fetch|switch|rollback|check-boot|usb|bundle|dev-key`: signed
A/B updates on RAUC (kiosk.update; README, "Updates in the field")."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import UserError, config_option, get_config, say


def one_line_errors(command):
    """kiosk.update's refusals are the technician's: one line, exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from kiosk.update import UpdateError  # noqa: PLC0415
        from kiosk.update.dbcopy import NewerSchemaError  # noqa: PLC0415
        from kiosk.update.tryboot import BackendError  # noqa: PLC0415

        try:
            return command(*args, **kwargs)
        except (UpdateError, BackendError, NewerSchemaError) as exc:
            raise UserError(i18n.text_of(exc)) from None

    return wrapper


def settings():
    from kiosk.update.settings import UpdateConfig  # noqa: PLC0415

    return getattr(get_config(), "update", None) or UpdateConfig()


def manager():
    from kiosk.update.manager import Manager  # noqa: PLC0415

    return Manager(settings(), log=lambda text: click.echo(text, err=True))


@click.group("update")
def update_group() -> None:
    """Signed A/B updates: the running and the other slot, install, switch, roll back."""


@update_group.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@one_line_errors
def update_status(as_json: bool) -> None:
    """Which slot runs which version, what is installed or on trial, how the last ended."""
    status = manager().status()
    if as_json:
        click.echo(json.dumps(status, indent=1, sort_keys=True))
        return
    say(
        i18n._(
            "running:  slot {slot}  {version}",
            slot=status["booted"],
            version=status["booted_version"] or i18n._("(unknown)"),
        )
    )
    say(
        i18n._(
            "other:    slot {slot}  {version}  ({state})",
            slot=status["other"],
            version=status["other_version"] or i18n._("(unknown)"),
            state=status["other_state"],
        )
    )
    say(i18n._("boots:    slot {slot} (committed)", slot=status["committed"]))
    if status["pending"]:
        say(
            i18n._(
                "waiting:  slot {slot} to be tried at the next quiet moment", slot=status["pending"]
            )
        )
    last = status.get("last")
    if last:
        say(
            i18n._(
                "last:     {version}: {result} ({reason}) at {at}",
                version=last.get("version"),
                result=last.get("result"),
                reason=last.get("reason"),
                at=last.get("at"),
            )
        )


@update_group.command("install")
@config_option
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--now", is_flag=True, help="Switch right after installing, not at a quiet moment.")
@click.option("--allow-older", is_flag=True, help="Install a version no newer than the running.")
@one_line_errors
def update_install(bundle: Path, now: bool, allow_older: bool) -> None:
    """Check BUNDLE's signature and payload, write it into the other slot while selling
    goes on; the switch follows at the next quiet moment (or --now)."""
    m = manager()
    info = m.install(bundle, allow_older=allow_older)
    say(
        i18n._(
            "installed {version} (signed by {signer}) into the other slot",
            version=info.version,
            signer=info.signer,
        )
    )
    if now:
        m.switch()


@update_group.command("switch")
@config_option
@click.option("--when-quiet", is_flag=True, help="Only at a quiet moment ([update] settings).")
@one_line_errors
def update_switch(when_quiet: bool) -> None:
    """Reboot into the installed slot once; it is kept if it sells, else the kiosk comes
    back to this one."""
    from kiosk.update import schedule  # noqa: PLC0415

    m = manager()
    if m.backend.state().pending is None:
        if when_quiet:
            return  # the timer's usual case: nothing installed
        raise UserError(i18n._("nothing installed to switch to"))
    if not when_quiet:
        m.switch()
        return
    ledger = get_config().ledger.path

    def quiet_now() -> tuple[bool, str]:
        now = datetime.now(UTC)
        return schedule.quiet_moment(
            now, m.settings, schedule.last_sale(ledger), schedule.session(ledger.parent, now)
        )

    quiet, why = quiet_now()
    if not quiet:
        say(i18n._("not now: {why}", why=why))
        return
    say(i18n._("switching: {why}", why=why))
    m.switch(still_quiet=quiet_now)  # asked again once the slow part is done


@update_group.command("rollback")
@config_option
@one_line_errors
def update_rollback() -> None:
    """Back to the other slot's version (tried once, kept once it sells)."""
    manager().rollback()


@update_group.command("step-down")
@config_option
@one_line_errors
def update_step_down() -> None:
    """Before the app starts (kiosk-update-check.service): let this version use a ledger
    a newer version migrated, when the ledger says it can (README, "Schemas across an
    update"); a ledger it cannot use is refused in one line, nothing changed."""
    from kiosk.ledger import migrations  # noqa: PLC0415
    from kiosk.update import dbcopy  # noqa: PLC0415

    said = dbcopy.step_down(get_config().ledger.path, migrations.LATEST)
    if said:
        click.echo(f"kiosk-update: {said}")


@update_group.command("check-boot")
@config_option
@one_line_errors
def update_check_boot() -> None:
    """Every boot (kiosk-update-check.service): judge a trial boot of a new version:
    mark it good once it sells, or mark it bad and go back; report a trial that fell back."""
    click.echo(manager().boot_check())


@update_group.command("usb")
@config_option
@click.argument("mountpoint", type=click.Path(path_type=Path, file_okay=False))
@one_line_errors
def update_usb(mountpoint: Path) -> None:
    """Install the newest signed bundle found on a technician's USB stick."""
    from kiosk.update import UpdateError, bundle  # noqa: PLC0415

    found = sorted(p for p in mountpoint.glob("*.raucb") if p.is_file())
    if not found:
        raise UserError(
            i18n._("{mountpoint}: no *.raucb bundle on the stick", mountpoint=mountpoint)
        )
    checked, refused = [], []
    for path in found:
        try:
            checked.append(bundle.check(path, settings().keyring))
        except UpdateError as exc:
            refused.append(str(exc))
    for line in refused:
        say(i18n._("refused: {line}", line=line), err=True)
    if not checked:
        raise UserError(
            i18n._(
                "{mountpoint}: no bundle on the stick is signed for this kiosk",
                mountpoint=mountpoint,
            )
        )
    from kiosk.update.manager import version_key  # noqa: PLC0415

    newest = max(checked, key=lambda info: version_key(info.version))
    info = manager().install(newest.path)
    say(i18n._("installed {version} from {name}", version=info.version, name=newest.path.name))


@update_group.command("fetch")
@config_option
@one_line_errors
def update_fetch() -> None:
    """Install the shop controller's update offer if it is for this kiosk and newer
    (kiosk-update-fetch.timer runs this every 15 minutes)."""
    from kiosk import __version__  # noqa: PLC0415
    from kiosk.update import fetch  # noqa: PLC0415

    config = get_config()
    m = manager()
    said = fetch.fetch(
        settings().source, config.device.id, __version__, settings().download_dir, m.record,
        m.install,
    )  # fmt: skip
    say(said)


@update_group.command("bundle")
@click.option("--version", "version", required=True, help="The app version the bundle carries.")
@click.option("--root", "root_image", required=True, type=click.Path(path_type=Path),
              help="The root file system image (ext4).")  # fmt: skip
@click.option("--boot", "boot_image", type=click.Path(path_type=Path),
              help="The slot's boot partition image (FAT).")  # fmt: skip
@click.option("--cert", required=True, type=click.Path(path_type=Path))
@click.option("--key", required=True, help="Key file or PKCS#11 URL.")
@click.option("--build", "build_id", default="", help="A build id (git commit) for the record.")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@one_line_errors
def update_bundle(version, root_image, boot_image, cert, key, build_id, out) -> None:
    """Build a signed RAUC bundle (verity format) for the kiosk image's slots."""
    from kiosk.update import bundle  # noqa: PLC0415

    bundle.build(out, version, cert, key, root_image, boot_image, build_id)
    say(i18n._("{out}: {version} signed", out=out, version=version))


@update_group.command("dev-key")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@one_line_errors
def update_dev_key(folder: Path) -> None:
    """A development signing key and certificate in FOLDER (never for a shop)."""
    from kiosk.update import bundle  # noqa: PLC0415

    key, cert = bundle.make_dev_key(folder)
    click.echo(f"{key}\n{cert}")
