"""What looks like a card number (PAN), in one place: the payment driver masks it in
every text a terminal sends, the payment journal masks it in everything it stores, and
`kiosk ledger verify` looks for it. Nothing that matches is shown, logged or stored.
"""

from __future__ import annotations

import re

# 13 to 19 digits, maybe grouped by spaces or dashes, masked or not.
CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _masked(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "*" * (len(digits) - 4) + digits[-4:]


def mask(text: object, limit: int | None = None) -> str:
    """`text` with every card-number-like run replaced by "*" and its last 4 digits,
    cut to `limit` characters."""
    masked = CARD_NUMBER.sub(_masked, str(text))
    return masked if limit is None else masked[:limit]


def looks_like(text: str | None) -> bool:
    return bool(text) and CARD_NUMBER.search(text) is not None
