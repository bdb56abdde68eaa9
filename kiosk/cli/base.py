"""What every command group shares: the root group, the options, the one-line errors.

Usage mistakes exit 2 with one line, and every domain error the layers below raise
(config, barcode, money, ledger) is turned into one line on stderr and exit status 2 as
well; never a traceback for a user's mistake.

Only click is imported at start: the layers are imported by the commands that use them,
so `kiosk --help` and the light commands do not load peewee, msgspec, Kivy or paho.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kiosk import __version__, i18n

if TYPE_CHECKING:
    from kiosk.config import Config
    from kiosk.ledger.core import Ledger


def user_errors() -> tuple[type[Exception], ...]:
    """The layers' errors that are meant for the user (a one-line message, exit 2).

    Imported when a command has failed, not at start: an error can only have been raised
    once its layer is loaded."""
    from kiosk import numbers, textfile  # noqa: PLC0415
    from kiosk.checkout.replay import ReplayError  # noqa: PLC0415
    from kiosk.config import ConfigError  # noqa: PLC0415
    from kiosk.ledger.barcodes import BarcodeError  # noqa: PLC0415
    from kiosk.ledger.core import LedgerError  # noqa: PLC0415
    from kiosk.ledger.money import MoneyError  # noqa: PLC0415
    from kiosk.strings import StringsError  # noqa: PLC0415

    return (
        ConfigError,
        LedgerError,
        BarcodeError,
        MoneyError,
        ReplayError,
        numbers.NumberError,
        textfile.TextFileError,
        StringsError,
    )


_SHOP_LANGUAGE: list[str] = []  # [ui] language, once a command has read the config


def language() -> str:
    """The language of the person at the terminal (README, Languages: the command line)."""
    return i18n.user_language(_SHOP_LANGUAGE[0] if _SHOP_LANGUAGE else None)


def say(text: str, err: bool = False) -> None:
    """A line for the technician, in their language (a Message is rendered; plain
    text, e.g. machine-readable output, is printed as it is)."""
    if isinstance(text, i18n.Message):
        text = text.render(language())
    click.echo(text, err=err)


class UserError(click.ClickException):
    """One line on stderr and exit status 2; a Message is shown in the user's language."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"kiosk: {i18n.render(self.message, language())}", err=True)


class KioskGroup(click.Group):
    """Turns the layers' user-facing errors into exit status 2 with their message, and
    imports a command's module when that command is asked for (`lazy`: name ->
    "module:attribute"): `kiosk run`, which starts the app at every boot, loads no other
    command's module."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib  # noqa: PLC0415

            module, attribute = self.lazy[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if isinstance(exc, user_errors()):
                raise UserError(i18n.text_of(exc)) from None
            if isinstance(exc, OSError):
                raise UserError(
                    f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
                ) from None
            raise


def _remember_config(ctx: click.Context, _param, value: Path | None) -> None:
    if value is not None:
        ctx.find_root().meta["kiosk.config_path"] = value


config_option = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    expose_value=False,
    is_eager=True,
    callback=_remember_config,
    help="Config file (default: $KIOSK_CONFIG, then /etc/kiosk/kiosk.toml, then built-in).",
)
db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Ledger file, instead of [ledger] path.",
)


def get_config() -> Config:
    from kiosk.config import load as load_config  # noqa: PLC0415

    ctx = click.get_current_context()
    root = ctx.find_root()
    if "kiosk.config" not in root.meta:
        root.meta["kiosk.config"] = load_config(root.meta.get("kiosk.config_path"))
        _SHOP_LANGUAGE[:] = [root.meta["kiosk.config"].ui.language]
    return root.meta["kiosk.config"]


def open_ledger(db_path: Path | None = None) -> Ledger:
    from kiosk.ledger.core import Ledger  # noqa: PLC0415

    ledger = Ledger.open(get_config(), db_path)
    click.get_current_context().call_on_close(ledger.close)
    return ledger


def money_option(value: str, what: str) -> Decimal:
    """A money amount given on the command line, in the configured currency's unit."""
    from kiosk import numbers  # noqa: PLC0415

    unit = get_config().money.minor_unit
    try:
        return numbers.money(value, what, unit)
    except numbers.NumberError as exc:
        raise UserError(i18n.text_of(exc)) from None


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (the long-running commands' main loop)."""
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()


@click.group(cls=KioskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.version_option(__version__, prog_name="kiosk")
def cli() -> None:
    """Retail kiosk firmware: self-checkout, staffed till and mobile cart."""


def main() -> None:
    """Entry point: every error a user can cause ends as one line and a status."""
    try:
        status = cli.main(prog_name="kiosk", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "kiosk"
        click.echo(f"kiosk: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo(f"kiosk: {i18n._('aborted').render(language())}", err=True)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)
