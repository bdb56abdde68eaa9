"""`kiosk config check|show`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import config_option, get_config, say


@click.group("config")
def config_group() -> None:
    """Check and show configuration."""


@config_group.command("check")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def config_check(file: Path) -> None:
    """Validate FILE; exit 2 naming the key and the reason if it is wrong."""
    from kiosk.config import load_file as load_config_file  # noqa: PLC0415

    config = load_config_file(file)
    if config.ui.strings is not None:  # the screens' strings file is part of the config
        from kiosk import strings  # noqa: PLC0415

        strings.load(config.ui.strings)
    say(i18n._("{file}: ok", file=file))


@config_group.command("show")
@config_option
def config_show() -> None:
    """Print the effective config (secrets masked) as JSON."""
    config = get_config()
    click.echo(f"# from {config.source or 'built-in defaults'}")
    click.echo(json.dumps(config.to_display(), indent=2, default=str))
