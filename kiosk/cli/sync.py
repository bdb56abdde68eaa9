"""`kiosk sync` (outbox to the shop broker) and `kiosk outbox`."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import (
    UserError,
    config_option,
    db_option,
    get_config,
    open_ledger,
    say,
    wait_for_signal,
)


@click.command("sync")
@config_option
@db_option
@click.option("--once", is_flag=True, help="Drain the outbox, then exit (1 if it could not).")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(0, 86_400),
              help="With --once: give up after this many seconds.")  # fmt: skip
def sync_command(db_path: Path | None, once: bool, timeout: float) -> None:
    """Publish the outbox to the shop broker (the app runs this in the background)."""
    from kiosk.mqtt.publisher import Publisher, read_password  # noqa: PLC0415

    config = get_config()
    path = db_path or config.ledger.path
    if not path.exists():
        raise UserError(i18n._("{path}: no ledger here", path=path))
    read_password(config)  # a password file that cannot be read: one line, now
    publisher = Publisher(config, path).start()
    catalog = None
    if not once:  # no app here: the item master is applied as soon as it is checked
        from kiosk.mqtt.catalog_sync import CatalogSync  # noqa: PLC0415

        catalog = CatalogSync(config, path).start()
    try:
        if once:
            drained = publisher.drain(timeout)
            counts = publisher.store.counts()
            say(i18n._("sent {sent}; outbox {counts}", sent=publisher.sent, counts=counts))
            if not drained:
                raise UserError(
                    f"outbox not drained within {timeout:g} s: {publisher.last_error or 'busy'}"
                )
            return
        wait_for_signal()
    finally:
        publisher.stop()
        if catalog is not None:
            catalog.stop()


@click.command("outbox")
@config_option
@db_option
@click.option("--state", type=click.Choice(["pending", "sent", "dead"]), help="Only this state.")
@click.option("--retry", is_flag=True, help="Send dead-lettered events again.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
def outbox_command(db_path: Path | None, state: str | None, retry: bool, limit: int) -> None:
    """Stock events waiting, sent and dead-lettered."""
    from kiosk.mqtt.outbox import OutboxStore  # noqa: PLC0415

    ledger = open_ledger(db_path)
    store = OutboxStore(ledger.path)
    try:
        if retry:
            say(i18n._("{count} dead event(s) queued again", count=store.retry_dead()))
        counts = store.counts()
        click.echo(
            "outbox: "
            + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("pending", "sent", "dead"))
            + f"; last seq {store.last_seq() or 0}"
        )
        for row in store.rows(state, limit):
            error = f"  ({row.last_error})" if row.last_error else ""
            click.echo(f"{row.seq:>8} {row.kind:<9} {row.state:<7} tries {row.attempts}{error}")
    finally:
        store.close()
