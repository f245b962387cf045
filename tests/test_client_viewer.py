"""The viewer on series stored in a real core, and its display logic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from jivex_client.app import MainWindow
from jivex_client.core_link import CoreLink
from jivex_client.viewer.state import StackState, ViewTransform, WindowLevelState
from jivex_client.viewer.widget import SeriesViewer
from jivex_core.imaging.render import Window, render

DATA = Path("/work/shared/data")
MR_FILES = [DATA / f"dcm4che/MR{n:02d}.dcm" for n in range(1, 17)]
CR_MONO1 = DATA / "dwv/gdcm-CR-MONO1-10-chest.dcm"
JPEG_XL = DATA / "dcm4che/will-jxl.dcm"

#: Fixtures (qloop, core_setup, link, send, run_async): tests/conftest_client.py.
pytest_plugins = ["tests.conftest_client"]


def _wheel(widget: Any, steps: int) -> None:
    """Turn the mouse wheel by *steps* notches (positive = away from user)."""
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def _mouse(widget: Any, kind: Any, pos: QPointF, button: Any, buttons: Any) -> None:
    event = QMouseEvent(
        kind,
        pos,
        widget.mapToGlobal(pos),
        button,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def _drag(widget: Any, button: Any, start: QPointF, end: QPointF) -> None:
    _mouse(widget, QMouseEvent.Type.MouseButtonPress, start, button, button)
    _mouse(widget, QMouseEvent.Type.MouseMove, end, Qt.MouseButton.NoButton, button)
    _mouse(
        widget,
        QMouseEvent.Type.MouseButtonRelease,
        end,
        button,
        Qt.MouseButton.NoButton,
    )


async def _open(link: CoreLink, modality: str) -> tuple[dict, dict, list[dict]]:
    """The first study holding *modality*, its first series and instances."""
    studies = await link.request("list_studies", {})
    study = next(s for s in studies if modality in s["ModalitiesInStudy"])
    series = await link.request(
        "list_series", {"StudyInstanceUID": study["StudyInstanceUID"]}
    )
    instances = await link.request(
        "list_instances", {"SeriesInstanceUID": series[0]["SeriesInstanceUID"]}
    )
    return study, series[0], instances


@pytest.fixture
def mr_window(qtbot: Any, link: CoreLink, send: Any, run_async: Any) -> MainWindow:
    """The main window with the 16-slice MR series stored and opened."""
    send(MR_FILES)
    main = MainWindow(link)
    qtbot.addWidget(main)
    main.resize(900, 700)
    main.show()
    study, series, _ = run_async(_open(link, "MR"))
    run_async(main.open_series(study, series))
    viewer = main.viewers()[0]
    qtbot.waitUntil(lambda: viewer.current is not None, timeout=10000)
    return main


def test_series_opens_on_the_first_slice_with_overlays(
    qtbot: Any, mr_window: MainWindow
) -> None:
    viewer = mr_window.viewers()[0]
    assert viewer.stack.count == 16
    view = viewer.view
    assert view.corner_text("tl") == "DOE J1"
    assert view.corner_text("tr") == "2017-07-16"
    assert view.corner_text("bl") == "Im: 1/16"
    assert view.corner_text("br") == "W: 2677 L: 844"  # the file's window
    assert view.image_size() == (256, 256)
    # Display order follows Instance Number, as the index gives it.
    ds = pydicom.dcmread(viewer.refs[0].path, stop_before_pixels=True)
    assert int(ds.InstanceNumber) == 1


def test_wheel_moves_to_the_next_and_previous_slice(
    qtbot: Any, mr_window: MainWindow
) -> None:
    viewer = mr_window.viewers()[0]
    first = viewer.view._image
    _wheel(viewer.view, -1)  # towards the user: next image
    assert viewer.view.corner_text("bl") == "Im: 2/16"
    qtbot.waitUntil(lambda: viewer.current.ref == viewer.refs[1], timeout=5000)
    assert viewer.view._image != first
    _wheel(viewer.view, -3)
    assert viewer.view.corner_text("bl") == "Im: 5/16"
    _wheel(viewer.view, 10)  # stops at the first image
    assert viewer.view.corner_text("bl") == "Im: 1/16"
    assert viewer.stack.index == 0


def test_right_drag_changes_the_window(qtbot: Any, mr_window: MainWindow) -> None:
    viewer = mr_window.viewers()[0]
    view = viewer.view
    before = view.grab().toImage()
    start = QPointF(200, 200)
    _drag(view, Qt.MouseButton.RightButton, start, QPointF(300, 160))
    sensitivity = viewer.window_level.sensitivity
    expected = Window(844 - 40 * sensitivity, 2677 + 100 * sensitivity)
    assert viewer.window_level.user == Window(
        round(expected.center, 2), round(expected.width, 2)
    )
    assert view.corner_text("br") == (
        f"W: {expected.width:.0f} L: {expected.center:.0f}"
    )
    assert view.grab().toImage() != before
    # The user's window stays when moving to another slice.
    _wheel(view, -1)
    qtbot.waitUntil(lambda: viewer.current.ref == viewer.refs[1], timeout=5000)
    assert view.corner_text("br") == (
        f"W: {expected.width:.0f} L: {expected.center:.0f}"
    )


def test_ctrl_wheel_zooms_and_middle_drag_pans(
    qtbot: Any, mr_window: MainWindow
) -> None:
    view = mr_window.viewers()[0].view
    pos = QPointF(view.width() / 2, view.height() / 2)
    event = QWheelEvent(
        pos,
        view.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view, event)
    assert view.transform.zoom == pytest.approx(1.15**2)
    assert view.corner_text("bl") == "Im: 1/16"  # Ctrl+wheel does not scroll
    _drag(view, Qt.MouseButton.MiddleButton, QPointF(100, 100), QPointF(130, 90))
    assert (view.transform.pan_x, view.transform.pan_y) == pytest.approx((30, -10))


def test_monochrome1_is_shown_inverted(
    qtbot: Any, link: CoreLink, send: Any, run_async: Any
) -> None:
    send([CR_MONO1])
    study, series, instances = run_async(_open(link, "CR"))
    viewer = SeriesViewer(study, series, instances)
    qtbot.addWidget(viewer)
    viewer.resize(600, 600)
    viewer.show()
    qtbot.waitUntil(lambda: viewer.current is not None, timeout=10000)
    image = viewer.view._image
    shown = np.array(
        [
            [image.pixelColor(x, y).red() for x in range(0, 440, 20)]
            for y in range(0, 440, 20)
        ]
    )
    ds = pydicom.dcmread(instances[0]["path"])
    ds.PhotometricInterpretation = "MONOCHROME2"
    plain = render(ds)[::20, ::20]
    np.testing.assert_array_equal(shown, 255 - plain.astype(int))


def test_undecodable_image_shows_a_placeholder_and_the_rest_works(
    qtbot: Any, link: CoreLink, send: Any, run_async: Any
) -> None:
    send(MR_FILES[:2])
    study, series, instances = run_async(_open(link, "MR"))
    # A JPEG XL object (no decoder installed) in the middle of the series,
    # read from where it lies, as the viewer reads stored files.
    broken = {
        "SOPInstanceUID": "jpeg-xl",
        "SOPClassUID": "",
        "InstanceNumber": 2,
        "NumberOfFrames": None,
        "path": str(JPEG_XL),
    }
    viewer = SeriesViewer(study, series, [instances[0], broken, instances[1]])
    qtbot.addWidget(viewer)
    viewer.resize(600, 600)
    viewer.show()
    qtbot.waitUntil(lambda: viewer.current is not None, timeout=10000)
    viewer.step(1)
    qtbot.waitUntil(
        lambda: viewer.current.ref.SOPInstanceUID == "jpeg-xl", timeout=10000
    )
    assert viewer.view._image is None
    assert "1.2.840.10008.1.2.4.111" in viewer.view._placeholder
    assert viewer.view.corner_text("bl") == "Im: 2/3"
    viewer.view.grab()  # paints the placeholder without raising
    viewer.step(1)
    qtbot.waitUntil(lambda: viewer.current.frame is not None, timeout=10000)
    assert viewer.view.corner_text("bl") == "Im: 3/3"
    assert viewer.view._image is not None


def test_stack_state_clamps_at_both_ends() -> None:
    stack = StackState(3)
    assert not stack.step(-1)
    assert stack.step(5) and stack.index == 2
    assert stack.label() == "Im: 3/3"
    assert StackState(0).label() == "Im: -"


def test_window_drag_keeps_the_width_at_least_one() -> None:
    state = WindowLevelState(sensitivity=2.0)
    window = state.drag(-1000, 10, Window(40, 400))
    assert window == Window(60, 1)
    assert state.effective(Window(1, 1)) == window
    state.reset()
    assert state.effective(Window(1, 2)) == Window(1, 2)
    assert WindowLevelState.label(Window(40.4, 399.6)) == "W: 400 L: 40"


def test_zoom_keeps_the_point_under_the_mouse() -> None:
    transform = ViewTransform()
    image, view = (256, 256), (800, 600)
    point = (500.0, 200.0)
    before = transform.to_image(point, image, view)
    transform.zoom_at(2.0, point, image, view)
    after = transform.to_image(point, image, view)
    assert after == pytest.approx(before)
    assert transform.scale(image, view) == pytest.approx(600 / 256 * 2)
