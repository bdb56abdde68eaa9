"""Signed A/B updates on RAUC: bundles (bundle), the Pi firmware's tryboot slot switch
(tryboot, RAUC's custom bootloader backend), the card's layout and RAUC's post-install
handler (layout), install/switch/rollback and the boot check that keeps a new version or
goes back (manager), the quiet moment for the switch (schedule), the [update] settings
(settings), and the databases across an update (dbcopy: a copy before a migration, and
what an older version does with a newer schema)."""

from __future__ import annotations


class UpdateError(Exception):
    """An update step refused or failed for a reason given in one line."""
