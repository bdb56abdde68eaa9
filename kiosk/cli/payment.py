"""`kiosk payment list|resolve|scrub`: the card payment journal."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import UserError, config_option, db_option, open_ledger, say


@click.group("payment")
def payment_group() -> None:
    """Card payments and refunds the terminal left unsettled (the payment journal)."""


@payment_group.command("list")
@config_option
@db_option
@click.option("--all", "show_all", is_flag=True, help="The last 50 journal rows, settled or not.")
def payment_list(db_path: Path | None, show_all: bool) -> None:
    """Unsettled card payments: in flight, lost answers, approved without their
    posting, money the terminal moved that no posting accounts for."""
    from kiosk.ledger import payments  # noqa: PLC0415

    open_ledger(db_path)
    rows = payments.recent(50)[::-1] if show_all else payments.unsettled()
    for row in rows:
        click.echo(payments.describe(row))
    if not rows:
        click.echo("no unsettled card payments" if not show_all else "the journal is empty")


@payment_group.command("resolve")
@config_option
@db_option
@click.argument("payment_id", type=int)
@click.option("--staff", "staff_code", required=True, help="The supervisor's staff code.")
@click.option("--reason", required=True, help="What was done (refunded at the terminal, ...).")
def payment_resolve(db_path: Path | None, payment_id: int, staff_code: str, reason: str) -> None:
    """Mark a payment settled by hand, with the reason (audited; supervisors only)."""
    from kiosk.ledger import payments  # noqa: PLC0415
    from kiosk.ledger.core import LedgerError  # noqa: PLC0415
    from kiosk.ledger.sales import require_role  # noqa: PLC0415

    if not 1 <= payment_id <= 2**62:
        raise UserError(
            i18n._("no payment {payment_id} in the journal", payment_id=str(payment_id))
        )
    ledger = open_ledger(db_path)
    try:
        require_role(staff_code, "supervisor")
        row = payments.resolve(ledger, payment_id, staff_code, reason)
    except LedgerError as exc:
        raise UserError(i18n.text_of(exc)) from None
    say(i18n._("resolved: {payment}", payment=payments.describe(row)))


@payment_group.command("scrub")
@config_option
@db_option
def payment_scrub(db_path: Path | None) -> None:
    """Mask card numbers that a terminal's free text left in the journal's notes (an
    earlier version stored them): what `kiosk ledger verify` reports as a card number."""
    from kiosk.ledger import payments  # noqa: PLC0415

    ledger = open_ledger(db_path)
    changed = payments.scrub_card_numbers(ledger)
    say(i18n._("{count} journal note(s) masked", count=changed))
