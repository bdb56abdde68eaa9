"""The cart's rows (kiosk/screens/cart_rows.py) without a window: Kivy widgets that
draw nothing stand in for labels and buttons, so row reuse is checked exactly."""

from __future__ import annotations

import os

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")

from kivy.properties import StringProperty  # noqa: E402
from kivy.uix.boxlayout import BoxLayout  # noqa: E402
from kivy.uix.widget import Widget  # noqa: E402

from kiosk.screens.cart_rows import CartRows  # noqa: E402


class Cell(Widget):
    text = StringProperty("")


def make_rows():
    made, removed = [], []

    def button(text, action):
        cell = Cell(text=text)
        cell.action = action
        return cell

    def label(text, share):
        made.append(text)
        return Cell(text=text)

    box = BoxLayout(orientation="vertical")
    return CartRows(box, label, button, removed.append), box, made, removed


def texts(n: int, price="1.00") -> list[tuple[str, str, str]]:
    return [(f"item {i}", "1", price) for i in range(1, n + 1)]


def shown(box) -> list[tuple[str, str, str]]:
    rows = list(reversed(box.children))  # Kivy lists children last-added first
    return [tuple(cell.text for cell in reversed(row.children))[:3] for row in rows]


def test_a_scan_changes_one_row_and_keeps_the_others_widgets():
    rows, box, _made, _removed = make_rows()
    first = rows.show(texts(3), "Remove")
    widgets = [row.widget for row in first]
    again = rows.show([*texts(2), ("item 3", "2", "2.00")], "Remove")
    assert [row.widget for row in again] == widgets
    assert shown(box) == [("item 1", "1", "1.00"), ("item 2", "1", "1.00"), ("item 3", "2", "2.00")]


def test_the_next_customer_reuses_the_rows_of_the_last_cart_in_order():
    rows, box, made, removed = make_rows()
    widgets = [row.widget for row in rows.show(texts(25), "Remove")]
    labels_made = len(made)
    assert rows.show([], "Remove") == [] and box.children == []
    second = rows.show(texts(3, "2.50"), "Entfernen")
    assert [row.widget for row in second] == widgets[:3]  # row n is line n again
    assert len(made) == labels_made  # no new widgets for a shorter cart
    assert shown(box) == [(f"item {i}", "1", "2.50") for i in (1, 2, 3)]
    assert [row.remove.text for row in second] == ["Entfernen"] * 3
    second[2].remove.action()  # each reused row's remove button still removes its own line
    second[0].remove.action()
    assert removed == [3, 1]
    longer = rows.show(texts(27), "Remove")  # past the kept rows: new ones, numbered on
    assert [row.widget for row in longer[:25]] == widgets
    longer[26].remove.action()
    assert removed == [3, 1, 27]
    assert len(box.children) == 27
