"""The cart's rows on screen, kept in step with the snapshot's lines.

A scan adds one row, or changes one row's quantity and amount; the other rows keep
their widgets and their rendered text (Kivy renders a Label again only when its text
changes). Building every row again per scan (four widgets a line) cost a 25-line
cart ~40 ms of the UI thread on the bench (bench/scan_bench.py). Rows a shorter cart
does not need are kept for the next customer's: made anew for each cart, they left
the app ~4 MiB larger per cart of 25 until the allocator reused them (bench/app_bench.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout

ROW_HEIGHT_DP = 76
# Each column's share of the row's width: name, quantity, amount, the remove button.
SHARES = (0.55, 0.12, 0.18, 0.15)


@dataclass
class Row:
    widget: BoxLayout
    name: Any  # Label
    qty: Any  # Label
    total: Any  # Label
    remove: Any  # Button


class CartRows:
    """Row n (1-based) shows the snapshot's line n; its remove button removes line n.

    `label(text, share)` and `button(text, action)` make the widgets, as the app makes
    every other one; `remove(n)` is the remove button's action. At a staffed till the
    line's name is a button that chooses the line for the quantity pad: `pick(text,
    chosen, action)` makes it, `look(widget, chosen)` shows which one is chosen, and
    `choose(n)` is its action."""

    def __init__(
        self,
        box,
        label: Callable[[str, float], Any],
        button: Callable[[str, Callable[[], None]], Any],
        remove: Callable[[int], None],
        pick: Callable[[str, bool, Callable[[], None]], Any] | None = None,
        look: Callable[[Any, bool], None] | None = None,
        choose: Callable[[int], None] | None = None,
    ):
        self.box = box
        self.label = label
        self.button = button
        self.remove = remove
        self.pick, self.look, self.choose = pick, look, choose
        self.rows: list[Row] = []
        self.spare: list[Row] = []  # rows of earlier, longer carts, for the next ones
        box.clear_widgets()

    def show(
        self, texts: list[tuple[str, str, str]], remove_text: str, chosen: int | None = None
    ) -> list[Row]:
        """One (name, quantity, amount) per line (a chooser's name as markup); returns
        the rows, line 1 first."""
        while len(self.rows) > len(texts):
            row = self.rows.pop()
            self.box.remove_widget(row.widget)
            self.spare.append(row)
        while len(self.rows) < len(texts):
            row = self.spare.pop() if self.spare else self._row(len(self.rows) + 1)
            self.rows.append(row)
            self.box.add_widget(row.widget)
        for number, (row, (name, qty, total)) in enumerate(zip(self.rows, texts, strict=True), 1):
            row.name.text, row.qty.text, row.total.text = name, qty, total
            row.remove.text = remove_text
            if self.look is not None:
                self.look(row.name, number == chosen)
        return self.rows

    def _row(self, number: int) -> Row:
        widget = BoxLayout(size_hint_y=None, height=dp(ROW_HEIGHT_DP), spacing=dp(8))
        qty, total = (self.label("", share) for share in SHARES[1:3])
        if self.pick is not None:
            name = self.pick("", False, lambda: self.choose(number))
            name.size_hint_x = SHARES[0]
        else:
            name = self.label("", SHARES[0])
        remove = self.button("", lambda: self.remove(number))
        remove.size_hint_x = SHARES[3]
        for child in (name, qty, total, remove):
            widget.add_widget(child)
        return Row(widget, name, qty, total, remove)
