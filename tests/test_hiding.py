"""Hidden widgets leave the drawing (kiosk/screens/hiding.py), without a window: a
hidden one is out of its parent's children and canvas, kept alive for its kv id, and
comes back to its own place among its siblings whatever else was hidden meanwhile."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.lang import Builder  # noqa: E402
from kivy.uix.boxlayout import BoxLayout  # noqa: E402
from kivy.uix.widget import Widget  # noqa: E402

from kiosk.screens.hiding import Hideable  # noqa: E402


class Bar(Hideable, Widget):
    pass


def family():
    """A column of five: two fixed widgets and three that hide, interleaved."""
    box = BoxLayout(orientation="vertical")
    kids = [Bar(), Widget(), Bar(), Widget(), Bar()]
    for kid in kids:
        box.add_widget(kid)
    return box, kids


def placed(box) -> list:
    """The box's children in drawing order, without the empty stand-ins of hidden ones."""
    return [c for c in reversed(box.children) if not hasattr(c, "holds")]


def stand_ins_draw_nothing(box) -> bool:
    return all(
        not c.canvas.children and c.size == [0, 0] for c in box.children if hasattr(c, "holds")
    )


def test_hidden_leaves_its_parent_and_its_canvas_and_comes_back_in_place():
    box, kids = family()
    order = list(box.children)
    kids[2].visible = False
    assert kids[2].parent is None and kids[2] not in box.children
    assert all(c is not kids[2].canvas for c in box.canvas.children)  # not drawn at all
    assert len(box.children) == 5 and stand_ins_draw_nothing(box)
    kids[2].visible = True
    assert list(box.children) == order and kids[2].parent is box
    assert [c for c in box.canvas.children if c in [k.canvas for k in kids]] == [
        k.canvas for k in kids
    ]  # drawn in the same order as before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 2, 4]), st.booleans()), max_size=20))
def test_any_sequence_of_hiding_and_showing_keeps_the_siblings_order(steps):
    box, kids = family()
    for index, visible in steps:
        kids[index].visible = visible
        expected = [k for k in kids if not isinstance(k, Bar) or k.visible]
        assert placed(box) == expected and len(box.children) == 5
        assert stand_ins_draw_nothing(box)
        assert [c for c in box.canvas.children if c in [k.canvas for k in kids]] == [
            k.canvas for k in expected
        ]


def test_a_kv_rule_that_hides_it_at_build_takes_it_out_before_the_next_frame():
    Builder.load_string(
        """
<HidingFamily@BoxLayout>:
    Widget:
        id: first
    Bar:
        id: hidden
        visible: False
    Widget:
        id: last
"""
    )
    from kivy.factory import Factory  # noqa: PLC0415

    family_ = Factory.HidingFamily()
    Clock.tick()
    assert family_.ids.hidden.parent is None
    assert placed(family_) == [family_.ids.first, family_.ids.last]
    gc.collect()
    bar = family_.ids.hidden  # the kv id (a weak reference) still works
    bar.visible = True
    assert list(reversed(family_.children)) == [family_.ids.first, bar, family_.ids.last]


def test_one_made_hidden_then_added_leaves_before_the_next_frame():
    box = BoxLayout()
    bar = Bar(visible=False)
    box.add_widget(Widget())
    box.add_widget(bar)
    box.add_widget(Widget())
    Clock.tick()
    assert bar.parent is None and len(placed(box)) == 2
    bar.visible = True
    assert placed(box)[1] is bar


def test_hiding_twice_and_showing_twice_changes_nothing_more():
    box, kids = family()
    kids[0].visible = False
    kids[0].visible = False
    assert placed(box) == kids[1:]
    kids[0].visible = True
    kids[0].visible = True
    assert list(reversed(box.children)) == kids
    loose = Bar()
    loose.visible = False  # no parent: nothing to leave
    loose.visible = True
    assert loose.parent is None
