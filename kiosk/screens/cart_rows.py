"""The cart's rows on screen, kept in step with the snapshot's lines.

A scan adds one row, or changes one row's quantity and amount; the other rows keep
their widgets and their rendered text (Kivy renders a Label again only when its text
changes). Building every row again per scan (four widgets a line) cost a 25-line
cart ~40 ms of the UI thread on the bench (bench/scan_bench.py).
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
    every other one; `remove(n)` is the remove button's action."""

    def __init__(
        self,
        box,
        label: Callable[[str, float], Any],
        button: Callable[[str, Callable[[], None]], Any],
        remove: Callable[[int], None],
    ):
        self.box = box
        self.label = label
        self.button = button
        self.remove = remove
        self.rows: list[Row] = []
        box.clear_widgets()

    def show(self, texts: list[tuple[str, str, str]], remove_text: str) -> list[Any]:
        """One (name, quantity, amount) per line; returns the remove buttons, line 1 first."""
        while len(self.rows) > len(texts):
            self.box.remove_widget(self.rows.pop().widget)
        while len(self.rows) < len(texts):
            row = self._row(len(self.rows) + 1)
            self.rows.append(row)
            self.box.add_widget(row.widget)
        for row, (name, qty, total) in zip(self.rows, texts, strict=True):
            row.name.text, row.qty.text, row.total.text = name, qty, total
            row.remove.text = remove_text
        return [row.remove for row in self.rows]

    def _row(self, number: int) -> Row:
        widget = BoxLayout(size_hint_y=None, height=dp(ROW_HEIGHT_DP), spacing=dp(8))
        name, qty, total = (self.label("", share) for share in SHARES[:3])
        remove = self.button("", lambda: self.remove(number))
        remove.size_hint_x = SHARES[3]
        for child in (name, qty, total, remove):
            widget.add_widget(child)
        return Row(widget, name, qty, total, remove)
