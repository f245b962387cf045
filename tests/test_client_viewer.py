"""The reading viewer on series stored in a real core, driven like a user:
mouse, wheel and keys on the viewports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent, QFontMetrics, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from jivex_client.app import MainWindow
from jivex_client.core_link import CoreLink
from jivex_client.viewer.geometry import reference_line
from jivex_client.viewer.tools import ToolValues
from jivex_client.viewer.viewport import SERIES_MIME, SeriesViewer
from jivex_client.viewer.widget import StudyViewer
from jivex_core.imaging.render import Window, render
from jivex_core.uids import new_uid
from tests import iod
from tests.viewer_data import phantom, write_series

DATA = Path("/work/shared/data")
MR_FILES = [DATA / f"dcm4che/MR{n:02d}.dcm" for n in range(1, 17)]
CR_MONO1 = DATA / "dwv/gdcm-CR-MONO1-10-chest.dcm"
JPEG_XL = DATA / "dcm4che/will-jxl.dcm"

#: Fixtures (qloop, core_setup, link, send, run_async): tests/conftest_client.py.
pytest_plugins = ["tests.conftest_client"]


def _wheel(widget: Any, steps: int, modifiers: Any = None) -> None:
    """Turn the mouse wheel by *steps* notches (positive = away from user)."""
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers or Qt.KeyboardModifier.NoModifier,
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
    middle = (start + end) / 2
    _mouse(widget, QMouseEvent.Type.MouseMove, middle, Qt.MouseButton.NoButton, button)
    _mouse(widget, QMouseEvent.Type.MouseMove, end, Qt.MouseButton.NoButton, button)
    _mouse(
        widget,
        QMouseEvent.Type.MouseButtonRelease,
        end,
        button,
        Qt.MouseButton.NoButton,
    )


def _click(widget: Any, pos: QPointF) -> None:
    left = Qt.MouseButton.LeftButton
    _mouse(widget, QMouseEvent.Type.MouseButtonPress, pos, left, left)
    _mouse(
        widget, QMouseEvent.Type.MouseButtonRelease, pos, left, Qt.MouseButton.NoButton
    )


def _type(widget: Any, text: str) -> None:
    """Type *text* on the keyboard, letters beyond ASCII included (QTest's
    key clicks take ASCII only)."""
    from PySide6.QtGui import QKeyEvent

    for char in text:
        for kind in (QKeyEvent.Type.KeyPress, QKeyEvent.Type.KeyRelease):
            event = QKeyEvent(
                kind, Qt.Key.Key_unknown, Qt.KeyboardModifier.NoModifier, char
            )
            QApplication.sendEvent(widget, event)


def _painted_grey(view: Any) -> np.ndarray:
    """The grey levels a viewport painted, before placing them on screen."""
    painted = view._image.convertToFormat(view._image.Format.Format_Grayscale8)
    width, height = painted.width(), painted.height()
    rows = np.frombuffer(painted.constBits(), np.uint8).reshape(
        height, painted.bytesPerLine()
    )
    return rows[:, :width].copy()


def _draw(
    viewer: StudyViewer,
    viewport: SeriesViewer,
    tool: ToolValues,
    start: tuple[float, float],
    end: tuple[float, float],
) -> None:
    """Choose *tool* and drag it with the left button between two image
    points of *viewport*."""
    viewer.set_tool(tool)
    _drag(
        viewport.view,
        Qt.MouseButton.LeftButton,
        _screen(viewport, start),
        _screen(viewport, end),
    )


def _screen(viewport: SeriesViewer, point: tuple[float, float]) -> QPointF:
    """The widget pixel of an image point, as a mouse can hit it."""
    p = viewport.view.to_screen(point)
    return QPointF(round(p.x()), round(p.y()))


async def _study(link: CoreLink, modality: str) -> dict:
    studies = await link.request("list_studies", {})
    return next(s for s in studies if modality in s["ModalitiesInStudy"])


@pytest.fixture
def open_study(qtbot: Any, link: CoreLink, send: Any, run_async: Any) -> Any:
    """``open_study(files, modality)``: store *files*, open their study in a
    StudyViewer of 1000x760 and wait for the first image."""

    def opener(files: list[Path], modality: str) -> StudyViewer:
        send(files)
        study = run_async(_study(link, modality))
        viewer = StudyViewer(link, study)
        qtbot.addWidget(viewer)
        viewer.resize(1000, 760)
        viewer.show()
        run_async(viewer.open())
        qtbot.waitUntil(lambda: viewer.active.current is not None, timeout=10000)
        return viewer

    return opener


@pytest.fixture
def ct_files(tmp_path: Path) -> list[Path]:
    """Five slices of the phantom, 0.5 mm pixels, 2 mm apart."""
    study, series, frame = new_uid(), new_uid(), new_uid()
    return write_series(
        tmp_path / "ct",
        5,
        lambda i: phantom(),
        lambda i: (-64.0, -64.0, 2.0 * i),
        study=study,
        series=series,
        frame_of_reference=frame,
    )


def _wait_shown(qtbot: Any, viewport: SeriesViewer, index: int) -> None:
    qtbot.waitUntil(
        lambda: (
            viewport.current is not None
            and viewport.current.ref == viewport.refs[index]
        ),
        timeout=10000,
    )


# -- opening, scrolling, window ------------------------------------------------


def test_series_opens_on_the_first_slice_with_overlays(
    qtbot: Any, open_study: Any
) -> None:
    viewer = open_study(MR_FILES, "MR")
    viewport = viewer.active
    assert viewport.stack.count == 16
    view = viewport.view
    assert view.corner_text("tl").splitlines()[0] == "DOE J1"
    assert "2017-07-16" in view.corner_text("tr")
    assert view.corner_text("bl").splitlines()[0] == "Im: 1/16"
    assert view.corner_text("br").splitlines()[-1] == "W: 2677 L: 844"
    assert view.image_size() == (256, 256)
    ds = pydicom.dcmread(viewport.refs[0].path, stop_before_pixels=True)
    assert int(ds.InstanceNumber) == 1
    assert viewer.thumbnails.count() == 1


def test_wheel_keys_and_scroll_bar_move_through_the_stack(
    qtbot: Any, open_study: Any
) -> None:
    viewer = open_study(MR_FILES, "MR")
    viewport = viewer.active
    view = viewport.view
    first = view._image
    _wheel(view, -1)  # towards the user: next image
    assert viewport.stack.index == 1
    _wait_shown(qtbot, viewport, 1)
    assert view._image != first
    _wheel(view, 10)  # stops at the first image
    assert viewport.stack.index == 0
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert viewport.stack.index == 1
    qtbot.keyClick(view, Qt.Key.Key_PageDown)  # a tenth of the stack
    assert viewport.stack.index == 2
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert viewport.stack.index == 15
    assert view.corner_text("bl").startswith("Im: 16/16")
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert viewport.stack.index == 14
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert viewport.stack.index == 0
    viewport.scrollbar.setValue(7)
    assert viewport.stack.index == 7
    _wait_shown(qtbot, viewport, 7)
    assert viewport.scrollbar.maximum() == 15


def test_right_drag_changes_the_window_for_every_slice(
    qtbot: Any, open_study: Any
) -> None:
    viewer = open_study(MR_FILES, "MR")
    viewport = viewer.active
    view = viewport.view
    before = view.grab().toImage()
    _drag(view, Qt.MouseButton.RightButton, QPointF(200, 200), QPointF(300, 160))
    sensitivity = 2677 / 400
    expected = Window(
        round(844 - 40 * sensitivity, 2), round(2677 + 100 * sensitivity, 2)
    )
    assert viewport.display.user_window == expected
    # The window is the viewport's presentation state.
    assert viewport.display.state.voi[0].window == expected
    label = f"W: {expected.width:.0f} L: {expected.center:.0f}"
    assert view.corner_text("br").splitlines()[-1] == label
    assert view.grab().toImage() != before
    _wheel(view, -1)
    _wait_shown(qtbot, viewport, 1)
    assert view.corner_text("br").splitlines()[-1] == label


def test_ctrl_wheel_zooms_middle_drag_pans_and_fit_and_one_to_one(
    qtbot: Any, open_study: Any
) -> None:
    viewer = open_study(MR_FILES, "MR")
    viewport = viewer.active
    view = viewport.view
    fitted = view.transform().scale
    _wheel(view, 2, Qt.KeyboardModifier.ControlModifier)
    assert view.transform().scale == pytest.approx(fitted * 1.15**2)
    assert viewport.stack.index == 0  # Ctrl+wheel does not scroll
    before = view.transform().map(0, 0)
    _drag(view, Qt.MouseButton.MiddleButton, QPointF(100, 100), QPointF(130, 90))
    after = view.transform().map(0, 0)
    assert (after[0] - before[0], after[1] - before[1]) == pytest.approx((30, -10))
    assert "Zoom:" in view.corner_text("br")
    viewport.one_to_one()
    assert view.transform().scale == pytest.approx(1.0)
    assert viewport.display.state.displayed_areas[0].size_mode == "MAGNIFY"
    viewport.fit()
    assert view.transform().scale == pytest.approx(fitted)


def test_rotate_and_flip_turn_the_image_on_screen(qtbot: Any, open_study: Any) -> None:
    viewer = open_study(MR_FILES, "MR")
    viewport = viewer.active
    view = viewport.view
    w, h = view.width(), view.height()
    qtbot.keyClick(view, Qt.Key.Key_R)
    x, y = view.transform().map(0, 0)  # first pixel's corner: now top right
    assert x > w / 2 and y < h / 2
    assert viewport.display.state.rotation == 90
    assert "Rot: 90°" in view.corner_text("br")
    qtbot.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(view, Qt.Key.Key_V)
    x, y = view.transform().map(0, 0)
    assert x < w / 2 and y > h / 2
    assert (viewport.display.state.rotation, viewport.display.state.flip) == (180, True)
    qtbot.keyClick(view, Qt.Key.Key_H)
    x, y = view.transform().map(0, 0)
    assert x > w / 2 and y > h / 2


def test_ct_presets_auto_window_and_invert(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    qtbot.keyClick(view, Qt.Key.Key_1)
    assert viewport.display.user_window == Window(-600, 1500)
    assert view.corner_text("br").splitlines()[-1] == "W: 1500 L: -600"
    qtbot.keyClick(view, Qt.Key.Key_3)
    assert viewport.display.user_window == Window(400, 1800)
    viewer._on_preset_menu_about_to_show()
    names = [a.text().split("\t")[0] for a in viewer.preset_menu.actions()]
    assert names[:5] == ["Lung", "Mediastinum", "Bone", "Brain", "Abdomen"]
    assert any(n.startswith("File window 1 (400/40)") for n in names)
    qtbot.keyClick(view, Qt.Key.Key_A)
    auto = viewport.display.user_window
    assert auto is not None and auto.width > 1
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert viewport.display.user_window is None
    pixel = view.grab().toImage().pixelColor(view.width() // 2, view.height() // 2)
    qtbot.keyClick(view, Qt.Key.Key_I)
    assert viewport.display.state.presentation_shape == "INVERSE"
    inverted = view.grab().toImage().pixelColor(view.width() // 2, view.height() // 2)
    assert abs(inverted.red() - (255 - pixel.red())) <= 1


def test_monochrome1_is_shown_inverted(qtbot: Any, open_study: Any) -> None:
    viewer = open_study([CR_MONO1], "CR")
    viewport = viewer.active
    image = viewport.view._image
    shown = np.array(
        [
            [image.pixelColor(x, y).red() for x in range(0, 440, 20)]
            for y in range(0, 440, 20)
        ]
    )
    ds = pydicom.dcmread(viewport.refs[0].path)
    ds.PhotometricInterpretation = "MONOCHROME2"
    plain = render(ds)[::20, ::20]
    np.testing.assert_array_equal(shown, 255 - plain.astype(int))
    # The state says so as a GSPS would: INVERSE for MONOCHROME1.
    assert viewport.display.state.presentation_shape == "INVERSE"


# -- layout, thumbnails, cine ----------------------------------------------------


def test_layouts_thumbnails_and_drop(
    qtbot: Any, open_study: Any, tmp_path: Path
) -> None:
    study, frame = new_uid(), new_uid()
    files = []
    for number in (1, 2, 3):
        files += write_series(
            tmp_path / f"s{number}",
            3,
            lambda i: phantom(64, 64),
            lambda i: (0.0, 0.0, 2.0 * i),
            study=study,
            series=new_uid(),
            frame_of_reference=frame,
            series_number=number,
        )
    viewer = open_study(files, "CT")
    qtbot.waitUntil(lambda: viewer.thumbnails.count() == 3, timeout=5000)
    for rows, columns in ((1, 1), (1, 2), (2, 2), (3, 3), (4, 4), (2, 3)):
        viewer.set_layout(rows, columns)
        assert len(viewer.viewports()) == rows * columns
        assert viewer.grid_layout.count() >= rows * columns
    viewer.set_layout(2, 2)
    # Empty viewports take the series not shown yet, in order.
    qtbot.waitUntil(
        lambda: sum(1 for v in viewer.viewports() if v.refs) == 3, timeout=10000
    )
    shown = [v.series.get("SeriesNumber") for v in viewer.viewports()[:3]]
    assert sorted(shown) == [1, 2, 3]
    # Thumbnails are rendered off the GUI thread and end up as icons.
    qtbot.waitUntil(
        lambda: all(
            not viewer.thumbnails.item(i).icon().pixmap(96, 96).toImage().isNull()
            for i in range(3)
        ),
        timeout=10000,
    )
    # Clicking the fourth viewport makes it active; a click on a thumbnail
    # shows that series there.
    fourth = viewer.viewports()[3]
    _click(fourth.view, QPointF(50, 50))
    assert viewer.active is fourth
    item = viewer.thumbnails.item(1)
    viewer.thumbnails.itemClicked.emit(item)
    uid = item.data(Qt.ItemDataRole.UserRole + 1)["SeriesInstanceUID"]
    qtbot.waitUntil(lambda: fourth.series_uid == uid, timeout=10000)
    # Dropping a series on the first viewport shows it there.
    first = viewer.viewports()[0]
    target = viewer.thumbnails.item(2).data(Qt.ItemDataRole.UserRole + 1)
    mime = viewer.thumbnails.mimeData([viewer.thumbnails.item(2)])
    assert mime.hasFormat(SERIES_MIME)
    drop = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # Qt delivers drops only inside a real drag; the handler is called as
    # the drag manager would.
    first.dropEvent(drop)
    assert drop.isAccepted()
    qtbot.waitUntil(
        lambda: first.series_uid == target["SeriesInstanceUID"], timeout=10000
    )
    assert viewer.active is first
    with pytest.raises(ValueError):
        viewer.set_layout(5, 1)


def test_cine_plays_and_stops(qtbot: Any, open_study: Any) -> None:
    viewer = open_study(MR_FILES, "MR")
    viewport = viewer.active
    viewer.fps_box.setValue(40)
    viewer.cine_action.trigger()
    assert viewport.playing and viewport.cine_fps == 40
    seen: set[int] = set()
    viewport.frame_shown.connect(seen.add)
    qtbot.waitUntil(lambda: len(seen) >= 16, timeout=15000)  # looped through
    viewer.cine_action.trigger()
    assert not viewport.playing
    index = viewport.stack.index
    qtbot.wait(200)
    assert viewport.stack.index == index


# -- measurements ------------------------------------------------------------------


def test_distance_on_a_ct_reads_mm_from_the_pixel_spacing(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    viewer.set_tool(ToolValues.DISTANCE)
    start, end = _screen(viewport, (50.0, 120.0)), _screen(viewport, (150.0, 120.0))
    _drag(view, Qt.MouseButton.LeftButton, start, end)
    (note,) = viewport.display.state.annotations
    p, q = note.graphics[0].points
    # 0.5 mm pixels: 100 pixels are 50 mm (within the mouse's reach of them).
    length = math.dist(p, q) * 0.5
    assert abs(length - 50.0) < 0.6
    assert note.texts[0].text == f"{length:.1f} mm"
    assert note.images[0].SOPInstanceUID == viewport.refs[0].SOPInstanceUID
    # Angle by three clicks.
    viewer.set_tool(ToolValues.ANGLE)
    for point in ((100.0, 60.0), (100.0, 100.0), (140.0, 100.0)):
        _click(view, _screen(viewport, point))
    angle = viewport.display.state.annotations[-1]
    assert angle.texts[0].text.endswith("°")
    assert abs(float(angle.texts[0].text[:-1]) - 90.0) < 1.5


def test_roi_statistics_in_hounsfield_units(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    viewer.set_tool(ToolValues.RECTANGLE)
    # Columns 120-139 of the ramp (2 * column - 200 HU), rows 60-79.
    _drag(
        view,
        Qt.MouseButton.LeftButton,
        _screen(viewport, (120.0, 60.0)),
        _screen(viewport, (140.0, 80.0)),
    )
    rect = viewport.display.state.annotations[-1]
    text = rect.texts[0].text
    assert text.startswith("Mean 59.0 HU")
    assert "Min 40.0 Max 78.0" in text
    outline = rect.graphics[0].points
    # The drawn rectangle (about 20 x 20 pixels of 0.25 mm²) is the area.
    (x0, y0), (x1, y1) = outline[0], outline[2]
    area = abs(x1 - x0) * abs(y1 - y0) * 0.25
    assert f"Area {area:.1f} mm²" in text and abs(area - 100) < 6
    assert outline[0] == outline[-1] and len(outline) == 5
    _draw(viewer, viewport, ToolValues.ELLIPSE, (100.0, 140.0), (160.0, 180.0))
    ellipse = viewport.display.state.annotations[-1]
    assert ellipse.texts[0].text.startswith("Mean 40.0 HU SD 0.0")
    viewer.set_tool(ToolValues.POLYGON)
    for point in ((110.0, 150.0), (150.0, 150.0), (130.0, 190.0)):
        _click(view, _screen(viewport, point))
    _mouse(
        view,
        QMouseEvent.Type.MouseButtonDblClick,
        _screen(viewport, (130.0, 190.0)),
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.LeftButton,
    )
    polygon = viewport.display.state.annotations[-1]
    assert polygon.graphics[0].points[0] == polygon.graphics[0].points[-1]
    assert polygon.texts[0].text.startswith("Mean 40.0 HU")
    # Select the rectangle by clicking its edge, then delete it.
    viewer.set_tool(ToolValues.POINTER)
    _click(view, _screen(viewport, (130.0, 60.0)))
    assert view.selected is rect
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert rect not in viewport.display.state.annotations
    assert len(viewport.display.state.annotations) == 2


def test_arrow_text_and_shutters(qtbot: Any, open_study: Any, ct_files: Any) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    _draw(viewer, viewport, ToolValues.ARROW, (30.0, 30.0), (80.0, 80.0))
    arrow = viewport.display.state.annotations[-1]
    assert len(arrow.graphics[0].points) == 5  # shaft and two barbs
    viewport.add_text("Lesion", (90.0, 90.0))
    assert viewport.display.state.annotations[-1].texts[0].text == "Lesion"
    viewer.set_tool(ToolValues.TEXT)
    _click(view, _screen(viewport, (40.0, 200.0)))
    dialog = viewport._text_dialog
    assert dialog is not None
    qtbot.keyClicks(dialog.text_edit, "Cyst")
    dialog.accept()
    assert viewport.display.state.annotations[-1].texts[0].text == "Cyst"
    _draw(viewer, viewport, ToolValues.SHUTTER_RECTANGLE, (20.0, 20.0), (236.0, 236.0))
    rect = viewport.display.state.shutter.rectangle
    assert rect is not None and abs(rect[0] - 21) <= 1 and abs(rect[1] - 236) <= 1
    _draw(viewer, viewport, ToolValues.SHUTTER_CIRCLE, (128.0, 128.0), (228.0, 128.0))
    (_center, radius) = viewport.display.state.shutter.circle
    assert abs(radius - 100) <= 1
    # Outside the circle the viewport is black; inside, the phantom shows.
    image = view.grab().toImage()
    corner = _screen(viewport, (5.0, 128.0))
    inside = _screen(viewport, (128.0, 128.0))
    assert image.pixelColor(int(corner.x()), int(corner.y())).red() == 0
    assert image.pixelColor(int(inside.x()), int(inside.y())).red() > 50
    viewer.set_tool(ToolValues.SHUTTER_POLYGON)
    for point in ((10.0, 10.0), (240.0, 10.0), (128.0, 240.0)):
        _click(view, _screen(viewport, point))
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert len(viewport.display.state.shutter.polygon) == 3
    viewport.remove_shutter()
    assert viewport.display.state.shutter is None


def test_annotations_are_selected_on_their_text_and_near_their_line(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    _draw(viewer, viewport, ToolValues.ARROW, (30.0, 200.0), (120.0, 200.0))
    arrow = viewport.display.state.annotations[-1]
    assert viewport.add_text("Suspicious lesion here", (60.0, 40.0))
    text = viewport.display.state.annotations[-1]
    _draw(viewer, viewport, ToolValues.DISTANCE, (140.0, 120.0), (220.0, 120.0))
    distance = viewport.display.state.annotations[-1]
    viewer.set_tool(ToolValues.POINTER)
    boxes = {id(a): box for a, _label, box in view.label_boxes()}
    box = boxes[id(text)]
    assert box.width() > 100  # the whole text, not its anchor
    # A click near the end of the text, far from its anchor, selects it.
    _click(view, QPointF(box.right() - 5, box.center().y()))
    assert view.selected is text
    _click(view, QPointF(300, 600))  # nothing there
    assert view.selected is None
    # A click on a measurement's value selects the measurement.
    label = boxes[id(distance)]
    _click(view, label.center())
    assert view.selected is distance
    # Four screen pixels beside the middle of the arrow's shaft.
    middle = view.to_screen((75.0, 200.0))
    _click(view, QPointF(middle.x(), middle.y() + 4))
    assert view.selected is arrow
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert arrow not in viewport.display.state.annotations
    _click(view, QPointF(box.center()))
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert text not in viewport.display.state.annotations
    assert viewport.display.state.annotations == [distance]


def test_a_text_longer_than_a_gsps_holds_is_refused_as_it_is_typed(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    from PySide6.QtWidgets import QDialogButtonBox

    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    viewer.set_tool(ToolValues.TEXT)
    _click(view, _screen(viewport, (40.0, 60.0)))
    dialog = viewport._text_dialog
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled()  # nothing typed yet
    qtbot.keyClicks(dialog.text_edit, "Lesion")
    assert ok.isEnabled() and "6 of 1024" in dialog.note.text()
    dialog.text_edit.setPlainText("x" * 1561)  # pasted
    assert not ok.isEnabled()
    assert "1561 characters" in dialog.note.text()
    assert "1024" in dialog.note.text()
    dialog.text_edit.setPlainText("x" * 1024)
    assert ok.isEnabled()
    qtbot.keyClicks(dialog.text_edit, "y")  # one more, typed
    assert not ok.isEnabled() and "1025 characters" in dialog.note.text()
    qtbot.keyClick(dialog.text_edit, Qt.Key.Key_Backspace)
    ok.click()
    assert viewport.display.state.annotations[-1].texts[0].text == "x" * 1024
    # Said on the message line when it comes another way.
    assert not viewport.add_text("z" * 1561, (10.0, 10.0))
    assert "1561 characters" in viewer.message.text()
    assert len(viewport.display.state.annotations) == 1


def test_the_presentation_label_says_what_it_transliterates(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    from jivex_client.viewer.dialogs import SavePresentationDialog

    viewer = open_study(ct_files, "CT")
    viewer.save_presentation_action.trigger()
    dialog = viewer.findChild(SavePresentationDialog)
    _type(dialog.label_edit, "lösion befund")
    assert dialog.label_edit.text() == "LÖSION BEFUND"  # nothing dropped
    assert "LOSION BEFUND" in dialog.label_note.text()
    assert "ö → O" in dialog.label_note.text() or "Ö → O" in dialog.label_note.text()
    assert dialog.values()[0] == "LOSION BEFUND"
    dialog.accept()
    qtbot.waitUntil(lambda: viewer.document_list.count() == 1, timeout=10000)
    assert "LOSION BEFUND" in viewer.document_list.item(0).text()


# -- reference lines and synchronized scrolling ----------------------------------------


def _two_orientations(tmp_path: Path) -> list[Path]:
    """An axial and a coronal series of one frame of reference."""
    study, frame = new_uid(), new_uid()
    axial = write_series(
        tmp_path / "axial",
        10,
        lambda i: phantom(64, 64),
        lambda i: (-32.0, -32.0, 4.0 * i),
        study=study,
        series=new_uid(),
        frame_of_reference=frame,
        spacing=(1.0, 1.0),
        series_number=1,
        description="AXIAL",
    )
    coronal = write_series(
        tmp_path / "coronal",
        10,
        lambda i: phantom(64, 64),
        lambda i: (-32.0, -20.0 + 4.0 * i, 50.0),
        study=study,
        series=new_uid(),
        frame_of_reference=frame,
        spacing=(1.0, 1.0),
        orientation=(1, 0, 0, 0, 0, -1),
        series_number=2,
        description="CORONAL",
    )
    return axial + coronal


def test_reference_lines_follow_the_active_slice(
    qtbot: Any, open_study: Any, tmp_path: Path
) -> None:
    viewer = open_study(_two_orientations(tmp_path), "CT")
    viewer.set_layout(1, 2)
    axial, coronal = viewer.viewports()
    qtbot.waitUntil(lambda: coronal.current is not None, timeout=10000)
    if axial.series.get("SeriesDescription") != "AXIAL":
        axial, coronal = coronal, axial
    viewer.set_active(axial)
    qtbot.waitUntil(lambda: len(coronal.view.reference_lines) == 1, timeout=5000)
    ((line, _color),) = coronal.view.reference_lines
    assert line == reference_line(coronal.current_plane(), axial.current_plane())
    # z = 0 on the coronal image (rows go down from z = 50 mm, 1 mm apart).
    assert line[0][1] == pytest.approx(50.5) and line[1][1] == pytest.approx(50.5)
    axial.show_index(5)  # z = 20 mm
    _wait_shown(qtbot, axial, 5)
    ((line, _color),) = coronal.view.reference_lines
    assert line[0][1] == pytest.approx(30.5)
    assert axial.view.reference_lines == []  # none on the active one
    viewer.reference_action.trigger()
    assert coronal.view.reference_lines == []


def test_synchronized_scrolling_by_slice_position(
    qtbot: Any, open_study: Any, tmp_path: Path
) -> None:
    study, frame = new_uid(), new_uid()
    thin = write_series(
        tmp_path / "thin",
        20,
        lambda i: phantom(64, 64),
        lambda i: (0.0, 0.0, 2.0 * i),
        study=study,
        series=new_uid(),
        frame_of_reference=frame,
        series_number=1,
    )
    thick = write_series(
        tmp_path / "thick",
        8,
        lambda i: phantom(64, 64),
        lambda i: (0.0, 0.0, 5.0 * i),
        study=study,
        series=new_uid(),
        frame_of_reference=frame,
        series_number=2,
    )
    viewer = open_study(thin + thick, "CT")
    viewer.set_layout(1, 2)
    a, b = viewer.viewports()
    qtbot.waitUntil(lambda: bool(a.planes) and bool(b.planes), timeout=10000)
    if len(a.refs) != 20:
        a, b = b, a
    viewer.set_active(a)
    viewer.sync_action.trigger()
    assert viewer.sync_scrolling
    a.show_index(10)  # z = 20 mm
    assert b.stack.index == 4  # z = 20 mm
    for _ in range(3):
        qtbot.keyClick(a.view, Qt.Key.Key_Down)  # z = 26 mm
    assert b.stack.index == 5  # z = 25 mm, the nearest
    viewer.sync_action.trigger()
    a.show_index(0)
    assert b.stack.index == 5


# -- documents and bad input ---------------------------------------------------------


def test_pdf_report_and_ecg_are_shown(
    qtbot: Any, link: CoreLink, send: Any, run_async: Any
) -> None:
    from pydicom.data import get_testdata_file

    files = [
        DATA / "orthanc-tests/sample-pdf.dcm",
        get_testdata_file("test-SR.dcm"),
        get_testdata_file("waveform_ecg.dcm"),
    ]
    send(files)
    studies = run_async(link.request("list_studies", {}))
    shown = {}
    for study in studies:
        viewer = StudyViewer(link, study)
        qtbot.addWidget(viewer)
        viewer.resize(900, 700)
        viewer.show()
        run_async(viewer.open())
        viewport = viewer.active
        qtbot.waitUntil(
            lambda v=viewport: (
                v.pages.currentWidget() in (v.pdf_view, v.report_view, v.waveform_view)
            ),
            timeout=15000,
        )
        shown[viewport.refs[0].SOPClassUID] = viewport
    pdf = shown["1.2.840.10008.5.1.4.1.1.104.1"]
    assert len(pdf.pdf_view.pages) == 1
    assert not pdf.pdf_view.pages[0].pixmap().isNull()
    report = shown["1.2.840.10008.5.1.4.1.1.88.33"]
    text = report.report_view.toPlainText()
    assert "Diagnosis" in text and "Diameter: 3 cm" in text
    ecg = shown["1.2.840.10008.5.1.4.1.1.9.1.1"]
    assert len(ecg.waveform_view.groups) == 2
    assert len(ecg.waveform_view.plot.group.channels) == 12
    assert ecg.waveform_view.chooser.count() == 2
    image = ecg.waveform_view.plot.grab().toImage()
    dark = sum(
        1
        for x in range(0, image.width(), 3)
        for y in range(0, image.height(), 3)
        if image.pixelColor(x, y).red() < 80
    )
    assert dark > 200  # the traces are drawn


def _broken(tmp_path: Path, ct_files: list[Path]) -> list[Path]:
    ds = pydicom.dcmread(ct_files[1])
    ds.BitsStored = 20  # more than Bits Allocated (16)
    bits = tmp_path / "bits.dcm"
    ds.save_as(bits)
    ds = pydicom.dcmread(ct_files[2])
    del ds.Rows
    rows = tmp_path / "rows.dcm"
    ds.save_as(rows)
    return [bits, rows]


def test_broken_images_show_a_placeholder_and_the_rest_works(
    qtbot: Any, open_study: Any, ct_files: Any, tmp_path: Path
) -> None:
    viewer = open_study(ct_files[:1], "CT")
    viewport = viewer.active
    good = viewport.refs[0]
    bits, rows = _broken(tmp_path, ct_files)
    broken = [
        {
            "SOPInstanceUID": f"broken-{n}",
            "SOPClassUID": good.SOPClassUID,
            "NumberOfFrames": None,
            "path": str(path),
        }
        for n, path in enumerate((JPEG_XL, bits, rows))
    ]
    good_row = {
        "SOPInstanceUID": good.SOPInstanceUID,
        "SOPClassUID": good.SOPClassUID,
        "NumberOfFrames": None,
        "path": good.path,
    }
    viewport.load(viewer.study, viewport.series, [good_row, *broken, good_row])
    reasons = []
    for index in (1, 2, 3):
        viewport.show_index(index)
        _wait_shown(qtbot, viewport, index)
        assert viewport.view._image is None
        reasons.append(viewport.view.placeholder)
        viewport.view.grab()  # paints the placeholder without raising
        assert viewport.view.corner_text("bl").startswith(f"Im: {index + 1}/5")
    assert "1.2.840.10008.1.2.4.111" in reasons[0]  # JPEG XL: no decoder
    assert "Bits Stored" in reasons[1] or "bits" in reasons[1].lower()
    assert "Rows" in reasons[2]
    qtbot.keyClick(viewport.view, Qt.Key.Key_End)
    _wait_shown(qtbot, viewport, 4)
    assert viewport.view._image is not None
    # Tools on a placeholder do nothing and raise nothing.
    viewport.show_index(2)
    _wait_shown(qtbot, viewport, 2)
    viewer.set_tool(ToolValues.DISTANCE)
    _drag(viewport.view, Qt.MouseButton.LeftButton, QPointF(10, 10), QPointF(90, 90))
    assert viewport.display.state.annotations == []


def test_main_window_opens_a_study_tab_per_study(
    qtbot: Any, link: CoreLink, send: Any, run_async: Any
) -> None:
    send(MR_FILES[:3])
    main = MainWindow(link)
    qtbot.addWidget(main)
    main.resize(1000, 700)
    main.show()
    study = run_async(_study(link, "MR"))
    series = run_async(
        link.request("list_series", {"StudyInstanceUID": study["StudyInstanceUID"]})
    )
    run_async(main.open_series(study, series[0]))
    run_async(main.open_series(study, series[0]))
    (viewer,) = main.viewers()
    qtbot.waitUntil(lambda: viewer.active.current is not None, timeout=10000)
    assert viewer.active.stack.count == 3
    assert main.tabs.count() == 2


# -- presentation states and key objects -----------------------------------------------


def _reopen(qtbot: Any, link: CoreLink, run_async: Any, study: dict) -> StudyViewer:
    viewer = StudyViewer(link, study)
    qtbot.addWidget(viewer)
    viewer.resize(1000, 760)
    viewer.show()
    run_async(viewer.open())
    qtbot.waitUntil(lambda: viewer.active.current is not None, timeout=10000)
    qtbot.waitUntil(lambda: viewer.document_list.count() > 0, timeout=10000)
    return viewer


def test_saved_presentation_restores_zoom_rotation_window_and_annotations(
    qtbot: Any, open_study: Any, ct_files: Any, link: CoreLink, run_async: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    _wheel(view, 3, Qt.KeyboardModifier.ControlModifier)
    _drag(view, Qt.MouseButton.MiddleButton, QPointF(300, 300), QPointF(340, 280))
    qtbot.keyClick(view, Qt.Key.Key_R)
    qtbot.keyClick(view, Qt.Key.Key_1)  # lung
    _draw(viewer, viewport, ToolValues.DISTANCE, (90.0, 100.0), (160.0, 100.0))
    _draw(viewer, viewport, ToolValues.ELLIPSE, (100.0, 140.0), (160.0, 180.0))
    viewer.set_tool(ToolValues.POINTER)
    shown = view.transform()
    texts = [a.texts[0].text for a in viewport.display.state.annotations]
    reply = run_async(viewer.save_presentation("MY VIEW", "lung, turned"))
    assert reply is not None, viewer.message.text()
    assert Path(reply["path"]).exists()
    iod.check_file(reply["path"])  # as the archive stored it
    saved = pydicom.dcmread(reply["path"])
    assert saved.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"
    assert saved.ContentLabel == "MY VIEW"
    assert viewer.document_list.count() == 1
    assert "MY VIEW" in viewer.document_list.item(0).text()
    study = viewer.study
    viewer.close_viewer()
    viewer.close()

    again = _reopen(qtbot, link, run_async, study)
    viewport = again.active
    assert viewport.display.state.rotation == 0  # nothing applied yet
    again.document_list.itemClicked.emit(again.document_list.item(0))
    qtbot.waitUntil(lambda: viewport.display.state.label == "MY VIEW", timeout=10000)
    state = viewport.display.state
    assert state.rotation == 90
    assert viewport.effective_window() == Window(-600, 1500)
    assert sorted(
        a.texts[0].text
        for a in state.annotations_for(viewport.refs[0].SOPInstanceUID, 1)
    ) == sorted(texts)
    restored = viewport.view.transform()
    assert restored.scale == pytest.approx(shown.scale, rel=0.02)
    for corner in ((0, 0), (256, 256)):
        distance = math.dist(restored.map(*corner), shown.map(*corner))
        assert distance < 2 * shown.scale  # integer area corners: one pixel
    assert "W: 1500 L: -600" in viewport.view.corner_text("br")


def test_zoomed_and_panned_past_the_corner_saves_a_valid_gsps_at_that_scale(
    qtbot: Any, open_study: Any, ct_files: Any, link: CoreLink, run_async: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    fitted = view.transform().scale
    while view.transform().scale < 4.9:
        _wheel(view, 1, Qt.KeyboardModifier.ControlModifier)
    assert view.transform().scale < 4.9 * 1.15 and view.transform().scale > fitted
    # Pull the image's top left corner well into the viewport.
    _drag(view, Qt.MouseButton.MiddleButton, QPointF(40, 40), QPointF(560, 600))
    shown = view.transform()
    corner = shown.map(0, 0)
    assert corner[0] > 40 and corner[1] > 40
    (area,) = viewport.display.state.displayed_areas
    assert min(*area.top_left, *area.bottom_right) >= 1
    reply = run_async(viewer.save_presentation("CORNER", ""))
    assert reply is not None, viewer.message.text()
    iod.check_file(reply["path"])  # no negative (or unsigned-misread) corner
    saved = pydicom.dcmread(reply["path"])
    item = saved.DisplayedAreaSelectionSequence[0]
    assert item.PresentationSizeMode == "MAGNIFY"
    assert float(item.PresentationPixelMagnificationRatio) == pytest.approx(
        shown.scale, rel=1e-3
    )
    study = viewer.study
    viewer.close_viewer()
    viewer.close()
    again = _reopen(qtbot, link, run_async, study)
    viewport = again.active
    again.document_list.itemClicked.emit(again.document_list.item(0))
    qtbot.waitUntil(lambda: viewport.display.state.label == "CORNER", timeout=10000)
    assert viewport.view.transform().scale == pytest.approx(shown.scale, rel=1e-3)
    assert f"Zoom: {shown.scale * 100:.0f}%" in viewport.view.corner_text("br")


def test_save_presentation_dialog(qtbot: Any, open_study: Any, ct_files: Any) -> None:
    from jivex_client.viewer.dialogs import SavePresentationDialog

    viewer = open_study(ct_files, "CT")
    viewer.save_presentation_action.trigger()
    dialog = viewer.findChild(SavePresentationDialog)
    qtbot.keyClicks(dialog.label_edit, "chest review")
    assert dialog.label_edit.text() == "CHEST REVIEW"
    dialog.description_edit.setText("for the board")
    dialog.accept()
    qtbot.waitUntil(lambda: viewer.document_list.count() == 1, timeout=10000)
    assert "CHEST REVIEW" in viewer.document_list.item(0).text()


def test_presentation_state_of_another_system_is_applied(
    qtbot: Any, open_study: Any
) -> None:
    image = DATA / "weasis-dicom-tools/imageForPrLUTs.dcm"
    state_file = DATA / "weasis-dicom-tools/prLUTs.dcm"
    viewer = open_study([image, state_file], "OT")
    qtbot.waitUntil(lambda: viewer.document_list.count() == 1, timeout=10000)
    viewport = viewer.active
    before = viewport.view._image.copy()
    viewer.document_list.itemClicked.emit(viewer.document_list.item(0))
    qtbot.waitUntil(lambda: viewport.display.state.modality is not None, timeout=10000)
    ds = pydicom.dcmread(state_file)
    modality = ds.ModalityLUTSequence[0]
    voi = ds.SoftcopyVOILUTSequence[0].VOILUTSequence[0]
    stored = pydicom.dcmread(image).pixel_array.astype(int)
    m_lut = np.asarray(modality.LUTData)
    v_lut = np.asarray(voi.LUTData)
    first_m = modality.LUTDescriptor[1]
    first_v = voi.LUTDescriptor[1]
    values = m_lut[np.clip(stored - first_m, 0, len(m_lut) - 1)]
    out = v_lut[np.clip(values - first_v, 0, len(v_lut) - 1)]
    expected = np.clip(out * 255.0 / (2 ** voi.LUTDescriptor[2] - 1) + 0.5, 0, 255)
    shown = viewport.view._image
    sample = [(x, y) for x in range(0, 512, 37) for y in range(0, 512, 41)]
    got = [shown.pixelColor(x, y).red() for x, y in sample]
    want = [int(expected[y, x]) for x, y in sample]
    assert got == want
    assert shown != before


def test_flagging_two_images_and_saving_lists_exactly_those(
    qtbot: Any, open_study: Any, ct_files: Any, link: CoreLink, run_async: Any
) -> None:
    from jivex_client.viewer.dialogs import SaveKeyImagesDialog

    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    qtbot.keyClick(view, Qt.Key.Key_Down)
    _wait_shown(qtbot, viewport, 1)
    qtbot.keyClick(view, Qt.Key.Key_K)
    assert view.key_image and viewer.key_action.isChecked()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    _wait_shown(qtbot, viewport, 3)
    assert not view.key_image
    viewer.key_action.trigger()  # the toolbar toggle
    qtbot.keyClick(view, Qt.Key.Key_Up)
    qtbot.keyClick(view, Qt.Key.Key_K)  # flag and unflag slice 3
    qtbot.keyClick(view, Qt.Key.Key_K)
    flagged = [viewport.refs[1].SOPInstanceUID, viewport.refs[3].SOPInstanceUID]
    assert [r.SOPInstanceUID for r in viewer.key_images.images] == flagged
    viewer.save_keys_action.trigger()
    dialog = viewer.findChild(SaveKeyImagesDialog)
    dialog.title_box.setCurrentIndex(dialog.title_box.findText("For Teaching"))
    dialog.text_edit.setPlainText("Two slices worth showing")
    dialog.accept()
    qtbot.waitUntil(lambda: viewer.document_list.count() == 1, timeout=10000)
    assert viewer.key_images.images == []
    row = viewer.document_row = viewer.document_list.item(0).data(
        Qt.ItemDataRole.UserRole + 1
    )
    assert sorted(row["references"]) == sorted(flagged)
    assert "For Teaching" in viewer.document_list.item(0).text()
    iod.check_file(row["path"])  # the key object document as stored
    study = viewer.study
    viewer.close_viewer()
    viewer.close()

    again = _reopen(qtbot, link, run_async, study)
    again.document_list.itemClicked.emit(again.document_list.item(0))
    viewport = again.active
    qtbot.waitUntil(lambda: len(viewport.refs) == 2, timeout=10000)
    assert [r.SOPInstanceUID for r in viewport.refs] == flagged
    qtbot.waitUntil(lambda: viewport.current is not None, timeout=10000)
    assert viewport.view.corner_text("bl").startswith("Im: 1/2")


def test_overlay_planes_are_drawn_over_the_image(
    qtbot: Any, open_study: Any, tmp_path: Path
) -> None:
    # JPEG Lossless, which storescu does not send: decompressed first.
    ds = pydicom.dcmread(
        DATA / "orthanc-tests/PatientWith2studies/TEST_1_study_2345.dcm"
    )
    ds.decompress()
    path = tmp_path / "overlay.dcm"
    ds.save_as(path)
    viewer = open_study([path], "CT")
    viewport = viewer.active
    assert len(viewport.view.overlays) == 1
    bitmap = pydicom.dcmread(path).overlay_array(0x6000)
    rows, columns = np.nonzero(bitmap)
    image = viewport.view.grab().toImage()
    hits = 0
    for row, column in list(zip(rows, columns, strict=True))[::10]:
        p = viewport.view.to_screen((column + 0.5, row + 0.5))
        hits += image.pixelColor(int(p.x()), int(p.y())).red() > 200
    assert hits >= len(rows[::10]) * 0.8


def test_a_saved_gsps_renders_through_the_pipeline_as_the_screen_shows_it(
    qtbot: Any, open_study: Any, ct_files: Any, run_async: Any
) -> None:
    """Window, zoom, pan, rotation, flip and shutter set with keys and mouse;
    the GSPS saved from that screen, read back and rendered by the pipeline
    (``jivex render --presentation``'s path) gives the grey levels the
    viewport painted, laid out as the screen lays them out."""
    from dataclasses import replace

    from jivex_core.imaging.gsps import presentation_from_dataset
    from jivex_core.imaging.output import transform_point

    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    _wheel(view, 2, Qt.KeyboardModifier.ControlModifier)
    _drag(view, Qt.MouseButton.MiddleButton, QPointF(300, 300), QPointF(330, 290))
    qtbot.keyClick(view, Qt.Key.Key_R)  # rotate clockwise
    qtbot.keyClick(view, Qt.Key.Key_H)  # then flip the screen horizontally
    qtbot.keyClick(view, Qt.Key.Key_2)  # mediastinum
    _draw(viewer, viewport, ToolValues.SHUTTER_RECTANGLE, (40.0, 30.0), (220.0, 200.0))
    viewer.set_tool(ToolValues.POINTER)
    shown = view.transform()
    reply = run_async(viewer.save_presentation("SCREEN", ""))
    assert reply is not None, viewer.message.text()
    iod.check_file(reply["path"])
    state = presentation_from_dataset(pydicom.dcmread(reply["path"]))
    image = pydicom.dcmread(ct_files[0])
    assert (state.rotation, state.flip) == (90, True)

    # Grey levels: what the viewport painted before placing it on screen.
    grey = _painted_grey(view)
    flat = replace(state, rotation=0, flip=False, displayed_areas=[], shutter=None)
    np.testing.assert_array_equal(render(image, state=flat), grey)

    # Layout: the pipeline's output pixel of each image point is where the
    # screen shows that point, up to the screen's scale and offset.
    full = render(image, state=state)
    area = state.area_for(image.SOPInstanceUID)
    (c0, r0), (c1, r1) = area.top_left, area.bottom_right
    left, top = min(c0, c1) - 1, min(r0, r1) - 1
    crop = (abs(c1 - c0) + 1, abs(r1 - r0) + 1)
    assert full.shape == (crop[0], crop[1]) or full.shape == (crop[1], crop[0])
    points = [(60.5, 40.5), (200.5, 45.5), (70.5, 190.5), (128.0, 128.0)]
    placed = [
        transform_point((x - left, y - top), *crop, state.flip, state.rotation)
        for x, y in points
    ]
    on_screen = [shown.map(*p) for p in points]
    scale = shown.scale
    origin = (
        on_screen[0][0] - placed[0][0] * scale,
        on_screen[0][1] - placed[0][1] * scale,
    )
    for (px, py), (sx, sy) in zip(placed, on_screen, strict=True):
        assert sx == pytest.approx(origin[0] + px * scale, abs=2 * scale)
        assert sy == pytest.approx(origin[1] + py * scale, abs=2 * scale)

    # The shutter: inside it the pipeline shows the image, outside its value.
    inside = transform_point((130 - left, 110 - top), *crop, state.flip, state.rotation)
    outside = transform_point((20 - left, 20 - top), *crop, state.flip, state.rotation)
    value = state.shutter.value >> 8
    assert full[int(outside[1]), int(outside[0])] == value
    assert full[int(inside[1]), int(inside[0])] == grey[110, 130]


def test_a_gsps_sigmoid_window_and_presentation_lut_show_as_the_pipeline_renders(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    from jivex_core.imaging.presentation import (
        ImageRef,
        LookupTable,
        PresentationState,
        VoiSetting,
    )

    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    image = pydicom.dcmread(ct_files[0])
    ref = ImageRef(image.SOPClassUID, image.SOPInstanceUID, image.SeriesInstanceUID)
    # A presentation LUT that keeps the darker half of the range: 8 bits in,
    # values 0..4095 out.
    table = LookupTable(0, 12, tuple(min(4095, 2 * v * 16) for v in range(256)))
    state = PresentationState(
        images=[ref],
        voi=[VoiSetting(window=Window(40, 400), function="SIGMOID")],
        presentation_lut=table,
    )
    viewport.apply_presentation(state)
    qtbot.waitUntil(lambda: viewport.display.state.presentation_lut is not None)
    grey = _painted_grey(viewport.view)
    expected = render(image, state=state)
    np.testing.assert_array_equal(grey, expected)
    # Not what a LINEAR window with no table would show.
    assert not np.array_equal(grey, render(image, window=Window(40, 400)))


# -- what the pipeline tolerated, on screen ------------------------------------------


def _red_pixels(image: Any, rect: Any) -> int:
    count = 0
    for y in range(int(rect.top()), int(rect.bottom()), 2):
        for x in range(int(rect.left()), int(rect.right()), 2):
            color = image.pixelColor(x, y)
            count += color.red() > 200 and color.green() < 140 and color.blue() < 140
    return count


def test_a_slice_with_half_its_pixel_data_says_so_on_the_viewport(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    ds = pydicom.dcmread(ct_files[2])
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(ct_files[2])
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    assert view.warnings == []
    before = view.grab().toImage()
    viewport.show_index(2)
    _wait_shown(qtbot, viewport, 2)
    # The lower half is missing: shown (as the pipeline fills it), and said.
    assert view._image is not None
    assert view.warnings == viewport.current.frame.warnings
    assert any("Pixel Data" in w for w in view.warnings), view.warnings
    band = view.warning_rect()
    assert band.height() > 10
    assert _red_pixels(view.grab().toImage(), band) > 20
    assert "Pixel Data" in view.toolTip()
    assert _red_pixels(before, band) == 0
    qtbot.keyClick(view, Qt.Key.Key_Down)
    _wait_shown(qtbot, viewport, 3)
    assert view.warnings == []
    assert _red_pixels(view.grab().toImage(), band) == 0


# -- layout, corners, letters ----------------------------------------------------------


def test_the_zoom_readout_follows_a_layout_change(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view

    def shown_zoom() -> str:
        t = view.transform()
        return f"Zoom: {min(t.scale, math.hypot(t.c, t.d)) * 100:.0f}%"

    viewer.set_layout(2, 2)
    qtbot.waitUntil(lambda: shown_zoom() in view.corner_text("br"), timeout=5000)
    small = shown_zoom()
    viewer.set_layout(1, 1)
    # The fitted image grew with the viewport: the corner says so at once.
    qtbot.waitUntil(lambda: shown_zoom() != small, timeout=5000)
    qtbot.wait(50)
    assert shown_zoom() in view.corner_text("br")
    assert small not in view.corner_text("br")


def test_a_4x4_layout_fits_a_1600x1000_screen(
    qtbot: Any, link: CoreLink, send: Any, run_async: Any, ct_files: Any
) -> None:
    send(ct_files)
    main = MainWindow(link)
    qtbot.addWidget(main)
    main.resize(1600, 1000)
    main.show()
    study = run_async(_study(link, "CT"))
    series = run_async(
        link.request("list_series", {"StudyInstanceUID": study["StudyInstanceUID"]})
    )
    run_async(main.open_series(study, series[0]))
    (viewer,) = main.viewers()
    viewer.set_layout(4, 4)
    qtbot.wait(200)
    # Room is left for a window frame and a panel of the desktop.
    hint = main.minimumSizeHint()
    assert hint.height() <= 900 and hint.width() <= 1500, hint
    assert (main.width(), main.height()) == (1600, 1000)
    bottom = viewer.viewports()[-1]
    corner = bottom.mapTo(main, bottom.rect().bottomRight())
    assert (
        corner.y() < main.statusBar().mapTo(main, main.statusBar().rect().topLeft()).y()
    )


def test_the_key_image_star_leaves_the_top_letter_visible(
    qtbot: Any, open_study: Any, ct_files: Any
) -> None:
    viewer = open_study(ct_files, "CT")
    view = viewer.active.view
    qtbot.keyClick(view, Qt.Key.Key_K)
    assert view.key_image
    assert view.orientation_labels()["top"] == "A"
    star = view.key_marker_polygon().boundingRect()
    letter = view.orientation_rects()["top"]
    assert letter.width() > 0
    assert not star.intersects(letter)
    # Nor does it hide the frame's warnings.
    assert star.bottom() <= view.warning_rect().top()
    # And the letter is painted where it is said to be: light pixels.
    image = view.grab().toImage()
    light = sum(
        image.pixelColor(x, y).red() > 200
        for x in range(int(letter.left()), int(letter.right()) + 1)
        for y in range(int(letter.top()), int(letter.bottom()) + 1)
    )
    assert light > 5


def _decompressed(path: Path, tmp_path: Path) -> Path:
    ds = pydicom.dcmread(path)
    ds.decompress()
    out = tmp_path / path.name
    ds.save_as(out)
    return out


@pytest.mark.parametrize(
    ("name", "modality", "row", "column"),
    [
        ("fo-dicom/OutOfBoundsOverlay.dcm", "MG", "R", "P"),
        ("highdicom/dx_image.dcm", "DX", "L", "F"),
        ("dicomsamples-jl/MG_Explicit_Little.dcm", "MG", "P", "L"),
    ],
)
def test_projection_images_get_letters_from_patient_orientation(
    qtbot: Any,
    open_study: Any,
    tmp_path: Path,
    name: str,
    modality: str,
    row: str,
    column: str,
) -> None:
    """PS3.3 C.7.6.1.1.1: Patient Orientation gives the direction of the
    rows (left to right) and of the columns (top to bottom)."""
    opposite = dict(zip("LRAPHF", "RLPAFH", strict=True))
    path = DATA / name
    if "OutOfBounds" in name:  # JPEG Lossless, which storescu does not send
        path = _decompressed(path, tmp_path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert "ImageOrientationPatient" not in ds
    assert list(ds.PatientOrientation) == [row, column]
    viewer = open_study([path], modality)
    view = viewer.active.view
    assert view.orientation_labels() == {
        "right": row,
        "left": opposite[row],
        "bottom": column,
        "top": opposite[column],
    }
    # Turned clockwise: what was at the top is on the right.
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert view.orientation_labels() == {
        "right": opposite[column],
        "left": column,
        "top": opposite[row],
        "bottom": row,
    }
    qtbot.keyClick(view, Qt.Key.Key_H)  # mirrored left to right on screen
    assert view.orientation_labels()["right"] == column
    assert view.orientation_labels()["top"] == opposite[row]
    image = view.grab().toImage()
    right = view.orientation_rects()["right"]
    assert right.width() > 0
    assert any(
        image.pixelColor(x, y).red() > 200 and image.pixelColor(x, y).blue() < 200
        for x in range(int(right.left()), int(right.right()) + 1)
        for y in range(int(right.top()), int(right.bottom()) + 1)
    )


# -- presentation states and key objects that do not fit the study ---------------------


def _fake_slices(ct_files: list[Path], count: int) -> list[pydicom.Dataset]:
    """Headers of *count* more slices of the study that are never stored."""
    out = []
    for _ in range(count):
        ds = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
        ds.SOPInstanceUID = new_uid()
        out.append(ds)
    return out


def _colour_image(ct_file: Path, path: Path) -> Path:
    """An RGB secondary capture of the CT's study and series."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ct = pydicom.dcmread(ct_file, stop_before_pixels=True)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate"):
        setattr(ds, keyword, ct.data_element(keyword).value)
    ds.SeriesInstanceUID = ct.SeriesInstanceUID
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 99
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(256)) * 3
    ds.save_as(path, enforce_file_format=True)
    return path


def _gsps_file(
    sources: list[pydicom.Dataset], path: Path, label: str, annotate: int | None = None
) -> Path:
    """A GSPS over *sources* (headers), written as a workstation would, with
    a text on source *annotate* when given."""
    from jivex_core.imaging.gsps import build_presentation_state
    from jivex_core.imaging.presentation import (
        Annotation,
        GraphicLayer,
        ImageRef,
        PresentationState,
        TextLabel,
    )

    refs = [
        ImageRef(str(s.SOPClassUID), str(s.SOPInstanceUID), str(s.SeriesInstanceUID))
        for s in sources
    ]
    state = PresentationState(images=refs, label=label, rotation=90)
    if annotate is not None:
        state.layers = [GraphicLayer("NOTES", 1, grey=65535)]
        state.annotations = [
            Annotation(
                "NOTES", (refs[annotate],), [], [TextLabel("Here", anchor=(20.0, 20.0))]
            )
        ]
    return iod.write(build_presentation_state(state, sources), path)


def _document_item(viewer: StudyViewer, label: str) -> Any:
    for i in range(viewer.document_list.count()):
        item = viewer.document_list.item(i)
        if label in item.text():
            return item
    raise AssertionError(f"no document {label!r} listed")


def _unchanged(viewport: SeriesViewer) -> tuple:
    view = viewport.view
    return (
        viewport.series_uid,
        viewport.stack.index,
        len(viewport.refs),
        viewport.display.state.rotation,
        view.corner_text("bl"),
        view.placeholder,
    )


def test_a_gsps_of_images_not_stored_or_colour_leaves_the_viewports_as_they_were(
    qtbot: Any, open_study: Any, ct_files: Any, tmp_path: Path, send: Any
) -> None:
    colour = _colour_image(ct_files[0], tmp_path / "colour.dcm")
    absent = _gsps_file(_fake_slices(ct_files, 3), tmp_path / "absent.dcm", "ABSENT")
    # A GSPS repointed at the colour image (written for a grey copy of it).
    grey_copy = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
    colour_ds = pydicom.dcmread(colour, stop_before_pixels=True)
    grey_copy.SOPInstanceUID = colour_ds.SOPInstanceUID
    grey_copy.SOPClassUID = colour_ds.SOPClassUID
    on_colour = _gsps_file([grey_copy], tmp_path / "oncolour.dcm", "ONCOLOUR")
    viewer = open_study([*ct_files, colour, absent, on_colour], "CT")
    qtbot.waitUntil(lambda: viewer.document_list.count() == 2, timeout=10000)
    viewport = viewer.active
    qtbot.keyClick(viewport.view, Qt.Key.Key_Down)
    _wait_shown(qtbot, viewport, 1)
    before = _unchanged(viewport)

    viewer.document_list.itemClicked.emit(_document_item(viewer, "ABSENT"))
    qtbot.waitUntil(lambda: "not applied" in viewer.message.text(), timeout=10000)
    assert "none of the 3 images" in viewer.message.text()
    assert _unchanged(viewport) == before

    viewer.document_list.itemClicked.emit(_document_item(viewer, "ONCOLOUR"))
    qtbot.waitUntil(lambda: "grey images only" in viewer.message.text(), timeout=10000)
    assert "RGB" in viewer.message.text()
    assert _unchanged(viewport) == before
    assert viewport.display.state.label != "ONCOLOUR"


def test_a_gsps_with_some_images_missing_applies_to_the_rest_on_its_annotated_slice(
    qtbot: Any, open_study: Any, ct_files: Any, tmp_path: Path
) -> None:
    stored = [pydicom.dcmread(f, stop_before_pixels=True) for f in ct_files]
    partial = _gsps_file(
        [*stored, *_fake_slices(ct_files, 2)], tmp_path / "partial.dcm", "PARTIAL", 3
    )
    viewer = open_study([*ct_files, partial], "CT")
    qtbot.waitUntil(lambda: viewer.document_list.count() == 1, timeout=10000)
    viewport = viewer.active
    viewer.document_list.itemClicked.emit(viewer.document_list.item(0))
    qtbot.waitUntil(lambda: viewport.display.state.label == "PARTIAL", timeout=10000)
    assert "2 of the 7 images it references are not stored here" in (
        viewer.message.text()
    )
    # The whole-series state goes to the slice its annotation is on.
    _wait_shown(qtbot, viewport, 3)
    assert viewport.current_ref().SOPInstanceUID == stored[3].SOPInstanceUID
    assert [t.text for a in viewport.view.annotations() for t in a.texts] == ["Here"]
    assert viewport.display.state.rotation == 90
    assert len(viewport.display.state.images) == 5
    # Moving on to another series clears the message.
    viewer.thumbnails.itemClicked.emit(viewer.thumbnails.item(0))
    qtbot.waitUntil(lambda: viewer.message.text() == "", timeout=10000)


def test_save_presentation_leaves_out_colour_and_unreadable_images(
    qtbot: Any, open_study: Any, ct_files: Any, tmp_path: Path
) -> None:
    foobar = pydicom.dcmread(ct_files[1])
    foobar.PhotometricInterpretation = "FOOBAR"
    foobar.SOPInstanceUID = new_uid()
    foobar.InstanceNumber = 6
    foobar.save_as(tmp_path / "foobar.dcm")
    norows = pydicom.dcmread(ct_files[2])
    del norows.Rows
    norows.SOPInstanceUID = new_uid()
    norows.InstanceNumber = 7
    norows.save_as(tmp_path / "norows.dcm")
    viewer = open_study(
        [*ct_files, tmp_path / "foobar.dcm", tmp_path / "norows.dcm"], "CT"
    )
    viewport = viewer.active
    assert viewport.stack.count == 7
    _draw(viewer, viewport, ToolValues.DISTANCE, (60.0, 60.0), (120.0, 60.0))
    reply = run_async_save(qtbot, viewer, "GOOD ONLY")
    assert reply is not None, viewer.message.text()
    text = viewer.message.text()
    assert "saved for 5 of 7 images" in text and "left out: 2" in text
    assert "FOOBAR" in text and "Rows" in text
    iod.check_file(reply["path"])
    saved = pydicom.dcmread(reply["path"])
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in saved.ReferencedSeriesSequence
        for item in series.ReferencedImageSequence
    }
    good = {
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in ct_files
    }
    assert referenced == good
    assert len(saved.GraphicAnnotationSequence) == 1


def run_async_save(qtbot: Any, viewer: StudyViewer, label: str) -> dict | None:
    from tests.conftest_client import run

    return run(qtbot, viewer.save_presentation(label, ""))


def _ko_file(
    sources: list[pydicom.Dataset],
    path: Path,
    text: str,
    states: list[Any] | None = None,
    extra: list[pydicom.Dataset] = (),
) -> Path:
    from jivex_core.imaging.ko import build_key_object_selection
    from jivex_core.imaging.presentation import ImageRef, KeyObjectSelection

    refs = [
        ImageRef(str(s.SOPClassUID), str(s.SOPInstanceUID), str(s.SeriesInstanceUID))
        for s in sources
    ]
    selection = KeyObjectSelection(
        refs, text=text, presentation_states=states or [None] * len(refs)
    )
    return iod.write(build_key_object_selection(selection, [*sources, *extra]), path)


def test_key_objects_partly_stored_or_unreadable_say_so(
    qtbot: Any, open_study: Any, ct_files: Any, tmp_path: Path
) -> None:
    stored = [pydicom.dcmread(f, stop_before_pixels=True) for f in ct_files]
    partial = _ko_file(
        [stored[1], *_fake_slices(ct_files, 1), stored[3]],
        tmp_path / "partial.dcm",
        "PARTIAL KO",
    )
    broken = _ko_file([stored[2]], tmp_path / "broken.dcm", "BROKEN KO")
    ds = pydicom.dcmread(broken)
    for item in ds.ContentSequence:
        if item.ValueType == "IMAGE":
            del item.ReferencedSOPSequence
    ds.save_as(broken)
    viewer = open_study([*ct_files, partial, broken], "CT")
    qtbot.waitUntil(lambda: viewer.document_list.count() == 2, timeout=10000)
    viewport = viewer.active
    before = _unchanged(viewport)
    # The archive lists it with why it cannot read it; opened, it says so.
    viewer.document_list.itemClicked.emit(_document_item(viewer, "Cannot be read"))
    qtbot.waitUntil(lambda: "cannot be shown" in viewer.message.text(), timeout=10000)
    assert "Referenced SOP Sequence" in viewer.message.text()
    assert _unchanged(viewport) == before
    viewer.document_list.itemClicked.emit(_document_item(viewer, "PARTIAL KO"))
    qtbot.waitUntil(lambda: len(viewport.refs) == 2, timeout=10000)
    assert [r.SOPInstanceUID for r in viewport.refs] == [
        stored[1].SOPInstanceUID,
        stored[3].SOPInstanceUID,
    ]
    assert viewer.message.text() == "1 of 3 key images are not stored here."


def test_key_images_are_saved_and_reopened_with_their_presentation(
    qtbot: Any, open_study: Any, ct_files: Any, link: CoreLink, run_async: Any
) -> None:
    from jivex_core.imaging.presentation import KEY_OBJECT_TITLES

    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    view = viewport.view
    qtbot.keyClick(view, Qt.Key.Key_Down)
    _wait_shown(qtbot, viewport, 1)
    qtbot.keyClick(view, Qt.Key.Key_R)
    qtbot.keyClick(view, Qt.Key.Key_1)  # lung
    _draw(viewer, viewport, ToolValues.DISTANCE, (60.0, 60.0), (120.0, 60.0))
    viewer.set_tool(ToolValues.POINTER)
    qtbot.keyClick(view, Qt.Key.Key_K)
    flagged = viewport.refs[1].SOPInstanceUID
    reply = run_async(viewer.save_key_images(KEY_OBJECT_TITLES[0], "with the view"))
    assert reply is not None, viewer.message.text()
    assert "1 of them with the presentation" in viewer.message.text()
    # The presentation was saved first, and the document names it.
    qtbot.waitUntil(lambda: viewer.document_list.count() == 2, timeout=10000)
    gsps_item = _document_item(viewer, "KEY IMAGES")
    gsps = gsps_item.data(Qt.ItemDataRole.UserRole + 1)
    iod.check_file(reply["path"])
    ko = pydicom.dcmread(reply["path"])
    (image,) = [i for i in ko.ContentSequence if i.ValueType == "IMAGE"]
    ref = image.ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == flagged
    assert (
        ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == (gsps["SOPInstanceUID"])
    )
    # Flagged again with that state applied and unchanged: no second GSPS.
    qtbot.keyClick(view, Qt.Key.Key_K)
    again = run_async(viewer.save_key_images(KEY_OBJECT_TITLES[0], "again"))
    assert again is not None
    qtbot.waitUntil(lambda: viewer.document_list.count() == 3, timeout=10000)
    ko2 = pydicom.dcmread(again["path"])
    (image,) = [i for i in ko2.ContentSequence if i.ValueType == "IMAGE"]
    nested = image.ReferencedSOPSequence[0].ReferencedSOPSequence[0]
    assert nested.ReferencedSOPInstanceUID == gsps["SOPInstanceUID"]
    study = viewer.study
    viewer.close_viewer()
    viewer.close()

    reopened = _reopen(qtbot, link, run_async, study)
    qtbot.waitUntil(lambda: reopened.document_list.count() == 3, timeout=10000)
    viewport = reopened.active
    assert viewport.display.state.rotation == 0
    reopened.document_list.itemClicked.emit(_document_item(reopened, "with the view"))
    qtbot.waitUntil(lambda: len(viewport.refs) == 1, timeout=10000)
    _wait_shown(qtbot, viewport, 0)
    assert viewport.display.state.rotation == 90
    assert viewport.effective_window() == Window(-600, 1500)
    assert [a.texts[0].text for a in viewport.view.annotations()] != []
    assert "Rot: 90°" in viewport.view.corner_text("br")


def test_the_document_list_follows_the_archive_and_the_keyboard(
    qtbot: Any, open_study: Any, ct_files: Any, tmp_path: Path, send: Any
) -> None:
    for path in ct_files:
        ds = pydicom.dcmread(path)
        ds.KVP = 120  # and no X-Ray Tube Current
        ds.save_as(path)
    viewer = open_study(ct_files, "CT")
    viewport = viewer.active
    assert viewport.view.corner_text("bl").splitlines()[-1] == "120 kV"
    assert " mA" not in viewport.view.corner_text("bl")  # no tube current given
    stored = [pydicom.dcmread(f, stop_before_pixels=True) for f in ct_files]
    # A GSPS of the study stored from elsewhere is listed as it arrives.
    send([_gsps_file(stored, tmp_path / "later.dcm", "FROM ELSEWHERE", 2)])
    qtbot.waitUntil(lambda: viewer.document_list.count() == 1, timeout=10000)
    assert "FROM ELSEWHERE" in viewer.document_list.item(0).text()
    # Chosen with the keyboard: Enter applies it.
    viewer.document_list.setFocus()
    viewer.document_list.setCurrentRow(0)
    qtbot.keyClick(viewer.document_list, Qt.Key.Key_Return)
    qtbot.waitUntil(
        lambda: viewport.display.state.label == "FROM ELSEWHERE", timeout=10000
    )
    _wait_shown(qtbot, viewport, 2)


def test_thumbnails_skip_a_bad_image_and_their_captions_fit(
    qtbot: Any, open_study: Any, tmp_path: Path
) -> None:
    study, frame = new_uid(), new_uid()
    files = []
    for number, description in ((1, "One bad slice"), (2, "All bad " * 6)):
        files += write_series(
            tmp_path / f"s{number}",
            3,
            lambda i: phantom(64, 64),
            lambda i: (0.0, 0.0, 2.0 * i),
            study=study,
            series=new_uid(),
            frame_of_reference=frame,
            series_number=number,
            description=description.strip(),
        )
    for path in [files[1], *files[3:]]:  # the middle of 1, all of 2
        ds = pydicom.dcmread(path)
        del ds.Rows
        ds.save_as(path)
    viewer = open_study(files, "CT")
    strip = viewer.thumbnails
    qtbot.waitUntil(lambda: strip.count() == 2, timeout=5000)
    from jivex_client.viewer.widget import NoteRole

    qtbot.waitUntil(lambda: strip.item(1).data(NoteRole) is not None, timeout=10000)
    # One bad slice: the next one is the picture, and no note.
    assert strip.item(0).data(NoteRole) is None
    icon = strip.item(0).icon().pixmap(96, 96).toImage()
    assert icon.pixelColor(48, 48).red() > 60  # the phantom's disc, not blank
    # Nothing renders: said once, under a caption cut to the width.
    assert strip.item(1).data(NoteRole) == "cannot render"
    lines = strip.caption_lines(1)
    assert lines[0] == "CT 2" and lines[-1] == "(cannot render)"
    assert lines[1].endswith("…") and lines.count("3 obj") == 1
    metrics = QFontMetrics(strip.item(1).font())
    assert all(metrics.horizontalAdvance(x) <= strip.viewport().width() for x in lines)
    assert "All bad All bad" in strip.item(1).toolTip()
