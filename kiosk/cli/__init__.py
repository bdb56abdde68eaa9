"""The `kiosk` command: one module per command group, the shared parts in `base`.

Built on click. `base` holds the root group, the shared options (--config, --db), the
one-line error handling and `main` (the console entry point, `kiosk.cli:main`). Each
group's module defines its commands with plain `@click.command` / `@click.group` and
imports what it needs inside the command, so `kiosk --help` loads none of the layers;
they are added to the root group here, in one list.
"""

from __future__ import annotations

from kiosk.cli import (
    broker,
    catalog,
    config,
    controller,
    hw,
    payment,
    provision,
    run,
    staff,
    stock,
    sync,
    update,
)
from kiosk.cli.base import UserError, cli, main

COMMANDS = (
    run.run,
    run.replay_command,
    config.config_group,
    catalog.catalog,
    stock.stock,
    stock.report,
    staff.ledger_group,
    staff.staff,
    sync.sync_command,
    sync.outbox_command,
    controller.controller_group,
    broker.broker_group,
    hw.hw_group,
    provision.provision_group,
    payment.payment_group,
    update.update_group,
)
for _command in COMMANDS:
    cli.add_command(_command)

__all__ = ["COMMANDS", "UserError", "cli", "main"]
