"""`kiosk broker config|add-device`: the shop's Mosquitto."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import UserError, config_option, get_config, say


@click.group("broker")
def broker_group() -> None:
    """Set up the shop's Mosquitto broker."""


@broker_group.command("config")
@config_option
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--port", default=1883, show_default=True, type=click.IntRange(1, 65535))
@click.option("--listen", default="0.0.0.0", show_default=True)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tls-ca", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--user", "run_as", help="User mosquitto runs as (default: its own).")
def broker_config(directory, port, listen, tls_cert, tls_key, tls_ca, run_as) -> None:
    """Write mosquitto.conf, the ACL and an empty password file into DIRECTORY."""
    from kiosk.mqtt import broker  # noqa: PLC0415

    tls = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise UserError(i18n._("TLS needs both --tls-cert and --tls-key"))
        tls = broker.TlsFiles(tls_cert, tls_key, tls_ca)
    try:
        directory = directory.absolute()  # mosquitto.conf names its files: start it anywhere
        written = broker.write_config(
            directory, get_config().topic_root, port=port, listen=listen, tls=tls, run_as=run_as
        )
        problem = broker.reach_problem(directory, run_as)
    except broker.BrokerError as exc:
        raise UserError(i18n.text_of(exc)) from None
    for path in written:
        click.echo(str(path))
    if problem:  # written all the same: the folder may be copied to where it runs
        say(i18n._("kiosk: warning: {problem}", problem=problem), err=True)


@broker_group.command("add-device")
@config_option
@click.argument("username")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The broker config folder.",
)
@click.option("--password-out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the new password here (mode 600) instead of printing it.")  # fmt: skip
def broker_add_device(username: str, directory: Path, password_out: Path | None) -> None:
    """Give a kiosk (its device id) or the controller ('controller') broker credentials."""
    import re  # noqa: PLC0415

    from kiosk import files  # noqa: PLC0415
    from kiosk.mqtt import broker  # noqa: PLC0415

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", username):
        raise UserError(i18n._("{username!r} is not a device id", username=username))
    if username != broker.CONTROLLER_USER and broker.reserved(username):
        raise UserError(
            i18n._("{username!r} is reserved for the shop controller", username=username)
        )
    if password_out and not (password_out.parent.is_dir() and (
            not password_out.exists() or password_out.is_file())):  # fmt: skip
        raise UserError(
            i18n._("{password_out}: not a file in an existing folder", password_out=password_out)
        )
    try:
        password = broker.add_credentials(directory / "passwd", username)
    except broker.BrokerError as exc:
        raise UserError(i18n.text_of(exc)) from None
    if password_out:  # a new 0600 file renamed into place: never in a readable one
        files.write_private(password_out, password + "\n")
        say(
            i18n._(
                "{username}: password written to {password_out}",
                username=username,
                password_out=password_out,
            )
        )
    else:
        click.echo(f"{username}: {password}")
