"""The viewer's Qt-free logic: geometry, measurements, display state, tools,
overlays, presets and documents, on known values and real files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from jivex_client.viewer import documents, geometry, measure, overlay, presets
from jivex_client.viewer.display import DisplayState, render_grey
from jivex_client.viewer.state import GridLayout, KeyImages, StackState, window_drag
from jivex_client.viewer.tools import Drawing, ToolValues, shutter_from
from jivex_core.imaging.presentation import (
    GraphicTypeValues,
    ImageRef,
    LookupTable,
    PresentationSizeModeValues,
    VoiSetting,
)
from jivex_core.imaging.render import Window

DATA = Path("/work/shared/data")


def _plane(position, row, column, spacing, rows, columns, frame="1.2.3"):
    return geometry.ImagePlane(
        np.asarray(position, float),
        np.asarray(row, float),
        np.asarray(column, float),
        spacing,
        rows,
        columns,
        frame,
    )


AXIAL = _plane((-100, -100, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0), 200, 200)
# y = 20 mm, from z = 50 down to z = -50 (0.5 mm rows).
CORONAL = _plane((-100, 20, 50), (1, 0, 0), (0, 0, -1), (0.5, 1.0), 200, 200)


# -- geometry ------------------------------------------------------------------


def test_reference_line_of_a_coronal_slice_on_an_axial_image() -> None:
    (p, q) = geometry.reference_line(AXIAL, CORONAL)
    # y = 20 mm is row coordinate 120 + 0.5 on the axial image, across it.
    assert sorted([p, q]) == [
        pytest.approx((0.0, 120.5)),
        pytest.approx((200.0, 120.5)),
    ]


def test_reference_line_of_an_axial_slice_on_a_coronal_image() -> None:
    (p, q) = geometry.reference_line(CORONAL, AXIAL)
    # z = 0 is 50 mm below the first row centre: 100 rows of 0.5 mm.
    assert sorted([p, q]) == [
        pytest.approx((0.0, 100.5)),
        pytest.approx((200.0, 100.5)),
    ]


def test_no_reference_line_for_parallel_or_unrelated_planes() -> None:
    other_slice = _plane((-100, -100, 5), (1, 0, 0), (0, 1, 0), (1.0, 1.0), 200, 200)
    assert geometry.reference_line(AXIAL, other_slice) is None
    elsewhere = _plane((-100, 20, 50), (1, 0, 0), (0, 0, -1), (0.5, 1.0), 200, 200, "9")
    assert geometry.reference_line(AXIAL, elsewhere) is None
    # A coronal slice that ends above the axial plane does not cut it.
    short = _plane((-100, 20, 50), (1, 0, 0), (0, 0, -1), (0.1, 1.0), 200, 200)
    assert geometry.reference_line(AXIAL, short) is None


def test_oblique_reference_line_is_clipped_to_the_image() -> None:
    # A sagittal-ish plane turned 45 degrees about the z axis, through the
    # centre of the axial image: the line is the diagonal x = y.
    r = 1 / math.sqrt(2)
    oblique = _plane((-300 * r, -300 * r, 100), (r, r, 0), (0, 0, -1), (1, 1), 200, 600)
    (p, q) = geometry.reference_line(AXIAL, oblique)
    for x, y in (p, q):
        assert 0 <= x <= 200 and 0 <= y <= 200
        # Patient x = y  <=>  image x - 0.5 - 100 = image y - 0.5 - 100.
        assert x == pytest.approx(y)
    assert math.dist(p, q) == pytest.approx(200 * math.sqrt(2))


def test_plane_from_a_dataset_and_back() -> None:
    ds = Dataset()
    ds.ImagePositionPatient = [-100, -100, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.8]
    ds.Rows, ds.Columns = 10, 20
    ds.FrameOfReferenceUID = "1.2.3"
    plane = geometry.frame_plane(ds)
    assert plane is not None and plane.spacing == (0.5, 0.8)
    point = plane.to_patient(3.5, 2.5)
    np.testing.assert_allclose(point, [-100 + 3 * 0.8, -100 + 2 * 0.5, 0])
    assert plane.to_image(point) == pytest.approx((3.5, 2.5))
    del ds.ImageOrientationPatient
    assert geometry.frame_plane(ds) is None


def test_plane_of_an_enhanced_frame_comes_from_its_functional_groups() -> None:
    ds = pydicom.dcmread(
        DATA / "cornerstone-wado/CT0012.fragmented_no_bot_jpeg_baseline.51.dcm"
    )
    planes = [geometry.frame_plane(ds, i) for i in range(2)]
    assert all(p is not None for p in planes)
    per_frame = ds.PerFrameFunctionalGroupsSequence
    for plane, item in zip(planes, per_frame, strict=True):
        np.testing.assert_allclose(
            plane.position,
            [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
        )


def test_sync_picks_the_slice_at_the_same_position() -> None:
    stack = [
        _plane((-100, -100, 2.5 * i), (1, 0, 0), (0, 1, 0), (1, 1), 200, 200)
        for i in range(10)
    ]
    source = _plane((-90, -90, 5.9), (1, 0, 0), (0, 1, 0), (0.7, 0.7), 256, 256)
    assert geometry.nearest_slice(source, stack) == 2
    beyond = _plane((-90, -90, 40.0), (1, 0, 0), (0, 1, 0), (0.7, 0.7), 256, 256)
    assert geometry.nearest_slice(beyond, stack) is None
    assert geometry.nearest_slice(CORONAL, stack) is None  # not parallel


def test_direction_labels() -> None:
    assert geometry.direction_label(np.array([1, 0, 0])) == "L"
    assert geometry.direction_label(np.array([0, -1, 0.2])) == "A"
    assert geometry.direction_label(np.array([-0.7, 0, -0.7])) in ("RF", "FR")


# -- measurements --------------------------------------------------------------


def test_distance_and_angle_use_the_pixel_spacing() -> None:
    spacing = measure.Spacing(0.5, 0.7, measure.SpacingSourceValues.PIXEL_SPACING)
    assert measure.distance((0, 0), (10, 0), spacing) == pytest.approx(7.0)
    assert measure.distance((0, 0), (0, 10), spacing) == pytest.approx(5.0)
    # 0.7 mm wide, 0.5 mm high pixels: (5, 7) is 3.5 mm by 3.5 mm: 45 degrees.
    assert measure.angle((10, 0), (0, 0), (5, 7), spacing) == pytest.approx(45.0)
    assert measure.angle((1, 0), (0, 0), (0, 1), measure.Spacing()) == 90.0


def test_spacing_sources() -> None:
    ds = Dataset()
    assert measure.pixel_spacing(ds).unit == "px"
    ds.ImagerPixelSpacing = [0.2, 0.2]
    spacing = measure.pixel_spacing(ds)
    assert spacing.source == measure.SpacingSourceValues.IMAGER_PIXEL_SPACING
    assert "Imager" in spacing.note
    ds.PixelSpacing = [0.3, 0.4]
    assert measure.pixel_spacing(ds) == measure.Spacing(
        0.3, 0.4, measure.SpacingSourceValues.PIXEL_SPACING
    )
    ds.Modality = "CT"
    assert measure.modality_units(ds) == "HU"


def test_region_statistics_on_a_phantom() -> None:
    values = np.zeros((100, 100), dtype=np.float32)
    yy, xx = np.mgrid[0:100, 0:100]
    values[(xx - 50) ** 2 + (yy - 50) ** 2 < 20**2] = 60.0
    values[10:20, 10:30] = np.arange(20, dtype=np.float32)  # a ramp
    spacing = measure.Spacing(0.5, 0.5, measure.SpacingSourceValues.PIXEL_SPACING)
    inside = measure.region_stats(
        values,
        measure.RoiShapeValues.ELLIPSE,
        measure.ellipse_points((40, 40), (60, 60)),
        spacing,
    )
    assert inside.mean == 60.0 and inside.sd == 0.0
    assert inside.area == pytest.approx(math.pi * 10 * 10 * 0.25)
    ramp = measure.region_stats(
        values,
        measure.RoiShapeValues.RECTANGLE,
        measure.rectangle_points((10, 10), (30, 20)),
        spacing,
    )
    assert ramp.count == 200
    assert (ramp.minimum, ramp.maximum, ramp.mean) == (0.0, 19.0, 9.5)
    assert ramp.sd == pytest.approx(np.std(np.tile(np.arange(20), 10), ddof=1))
    assert ramp.area == pytest.approx(20 * 10 * 0.25)
    triangle = measure.region_stats(
        values, measure.RoiShapeValues.POLYGON, ((0, 0), (10, 0), (0, 10)), spacing
    )
    # Pixel centres strictly inside x + y < 10: 45 of them.
    assert triangle.count == 45
    assert triangle.area == pytest.approx(50 * 0.25)


def test_region_annotation_is_a_closed_polyline_with_its_stats() -> None:
    values = np.full((50, 50), 40.0, dtype=np.float32)
    image = ImageRef("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "1.2.3")
    note = measure.region_annotation(
        measure.RoiShapeValues.RECTANGLE,
        ((5, 5), (15, 25)),
        values,
        measure.Spacing(1, 1, measure.SpacingSourceValues.PIXEL_SPACING),
        "HU",
        image,
    )
    graphic = note.graphics[0]
    assert graphic.type == GraphicTypeValues.POLYLINE
    assert graphic.points[0] == graphic.points[-1] and len(graphic.points) == 5
    assert "Mean 40.0 HU" in note.texts[0].text
    assert "Area 200.0 mm²" in note.texts[0].text
    assert note.images == (image,)


def test_pick_finds_the_nearest_outline() -> None:
    image = ImageRef("1.2", "1.2.3")
    spacing = measure.Spacing()
    a = measure.distance_annotation((0, 0), (100, 0), spacing, image)
    b = measure.distance_annotation((0, 50), (100, 50), spacing, image)
    assert measure.pick((50, 3), [a, b], 5) is a
    assert measure.pick((50, 47), [a, b], 5) is b
    assert measure.pick((50, 25), [a, b], 5) is None


# -- display state ----------------------------------------------------------------


def test_fit_rotate_and_flip_map_the_corners() -> None:
    display = DisplayState()
    size, view = (512, 256), (800, 600)
    t = display.transform("1", 1, size, view)
    assert t.scale == pytest.approx(800 / 512)
    assert t.map(0, 0) == pytest.approx((0, 300 - 256 * 800 / 512 / 2))
    display.rotate(90)
    t = display.transform("1", 1, size, view)
    # Turned clockwise: the top left corner goes to the top right.
    x, y = t.map(0, 0)
    assert x > 400 and y < 300
    assert t.scale == pytest.approx(min(800 / 256, 600 / 512))
    display.rotate(-90)
    display.flip_vertical()
    assert (display.state.rotation, display.state.flip) == (180, True)
    x, y = display.transform("1", 1, size, view).map(0, 0)
    assert x < 400 and y > 300  # top left went to the bottom left
    display.flip_horizontal()
    x, y = display.transform("1", 1, size, view).map(0, 0)
    assert x > 400 and y > 300
    assert (display.state.rotation, display.state.flip) == (180, False)


def test_zoom_keeps_the_point_under_the_mouse_and_is_a_displayed_area() -> None:
    display = DisplayState()
    size, view = (256, 256), (800, 600)
    t = display.transform("1", 1, size, view)
    point = (500.0, 200.0)
    before = t.inverse().map(*point)
    display.zoom_at(2.0, point, t, view)
    t2 = display.transform("1", 1, size, view)
    assert t2.inverse().map(*point) == pytest.approx(before)
    assert t2.scale == pytest.approx(t.scale * 2)
    (area,) = display.state.displayed_areas
    assert area.size_mode == PresentationSizeModeValues.SCALE_TO_FIT
    assert area.top_left[0] >= 1 and area.bottom_right[0] <= 256
    display.pan_by(30, -10, t2, view)
    t3 = display.transform("1", 1, size, view)
    assert t3.map(0, 0) == pytest.approx((t2.map(0, 0)[0] + 30, t2.map(0, 0)[1] - 10))
    display.one_to_one(t3, view)
    t4 = display.transform("1", 1, size, view)
    assert t4.scale == pytest.approx(1.0)
    assert display.state.displayed_areas[0].size_mode == "MAGNIFY"
    display.fit()
    assert display.transform("1", 1, size, view).scale == pytest.approx(600 / 256)


def test_a_saved_area_shows_the_same_view_again() -> None:
    display = DisplayState()
    size, view = (512, 512), (700, 700)
    t = display.transform("1", 1, size, view)
    display.zoom_at(2.5, (200, 300), t, view)
    display.rotate(270)
    shown = display.transform("1", 1, size, view)
    again = DisplayState()
    again.adopt(display.state)
    restored = again.transform("1", 1, size, view)
    # Integer area corners: within one image pixel.
    assert restored.scale == pytest.approx(shown.scale, rel=0.01)
    for corner in ((0, 0), (512, 512)):
        assert math.dist(restored.map(*corner), shown.map(*corner)) < shown.scale * 2


def test_window_and_invert_live_in_the_state() -> None:
    display = DisplayState()
    assert display.window_for("1", 1, Window(40, 400)) == Window(40, 400)
    display.set_window(Window(-600, 1500))
    assert display.window_for("2", 1, Window(40, 400)) == Window(-600, 1500)
    assert display.state.voi[0].images == ()
    display.follow_photometric("MONOCHROME1")
    assert display.inverse  # MONOCHROME1 shown as meant
    display.toggle_invert()
    assert display.state.presentation_shape == "IDENTITY"
    display.reset_window()
    assert display.state.voi == []


def test_render_grey_applies_a_voi_lut() -> None:
    values = np.array([[0, 1, 2, 3]], dtype=np.float32)
    lut = LookupTable(0, 8, (0, 100, 200, 255))
    voi = VoiSetting((), None, "LINEAR", "", lut)
    out = render_grey(values, Window(1, 1), voi, inverse=False)
    assert out.tolist() == [[0, 100, 200, 255]]
    out = render_grey(values, Window(1.5, 2), None, inverse=True)
    assert out[0, 0] == 255 and out[0, 3] == 0


# -- tools ------------------------------------------------------------------------


def test_drag_and_click_tools() -> None:
    drawing = Drawing(ToolValues.DISTANCE)
    drawing.press((1, 1))
    drawing.move((5, 5))
    assert drawing.preview() == [(1, 1), (5, 5)]
    drawing.release((10, 1))
    assert drawing.finished and drawing.points == [(1, 1), (10, 1)]
    click = Drawing(ToolValues.DISTANCE)
    click.press((1, 1))
    click.release((1.5, 1))
    assert not click.finished and click.points == []

    angle = Drawing(ToolValues.ANGLE)
    for p in ((0, 10), (0, 0), (10, 0)):
        angle.press(p)
        angle.release(p)
    assert angle.finished and angle.points == [(0, 10), (0, 0), (10, 0)]

    polygon = Drawing(ToolValues.POLYGON)
    for p in ((0, 0), (20, 0), (20, 20)):
        polygon.press(p)
        polygon.release(p)
    polygon.press((0.5, 0.5))  # back on the first vertex closes it
    assert polygon.finished and len(polygon.points) == 3


def test_shutters_from_drawings() -> None:
    size = (100, 80)
    shutter = shutter_from(
        ToolValues.SHUTTER_RECTANGLE, [(10, 5), (60, 40)], size, None
    )
    assert shutter.rectangle == (11, 60, 6, 40)
    shutter = shutter_from(
        ToolValues.SHUTTER_CIRCLE, [(49.5, 39.5), (79.5, 39.5)], size, shutter
    )
    assert shutter.circle == ((50, 40), 30) and shutter.rectangle is not None
    shutter = shutter_from(
        ToolValues.SHUTTER_POLYGON, [(0, 0), (99, 0), (50, 79), (0, 0)], size, None
    )
    assert shutter.polygon == ((1, 1), (100, 1), (51, 80))


def test_key_images_toggle_and_frames() -> None:
    keys = KeyImages()
    a = ImageRef("1.2", "1.1", "9")
    b = ImageRef("1.2", "1.2", "9")
    assert keys.toggle(a) and keys.toggle(b)
    assert keys.contains("1.1") and not keys.toggle(a)
    assert [r.SOPInstanceUID for r in keys.images] == ["1.2"]
    multi = ImageRef("1.3", "1.3", "9")
    keys.toggle(multi, 2)
    keys.toggle(multi, 5)
    assert keys.images[-1].frames == (2, 5)
    assert keys.contains("1.3", 5) and not keys.contains("1.3", 3)


def test_stack_layout_and_window_drag() -> None:
    stack = StackState(3)
    assert not stack.step(-1)
    assert stack.step(5) and stack.index == 2
    assert stack.advance() == 0
    assert GridLayout.parse("2x3").count == 6
    assert GridLayout(4, 4).position(5) == (1, 1)
    with pytest.raises(ValueError, match="1 to 4"):
        GridLayout(5, 1)
    assert window_drag(Window(40, 400), -1000, 10, 2.0) == Window(60, 1)


# -- overlay and presets ---------------------------------------------------------


def test_overlay_drops_empty_lines_and_takes_overrides() -> None:
    templates = overlay.OverlayTemplates(
        {"CT": {"top_left": ["{PatientID} / {PatientSex}", "{Nothing}"]}}
    )
    template = templates.template("CT")
    texts = overlay.corner_texts(template, {"PatientID": "42", "image": "Im: 1/2"})
    assert texts["top_left"] == "42 /"
    assert texts["bottom_left"].startswith("Im: 1/2")
    assert overlay.render_line("{PatientName.__class__}", {}) == ""
    assert overlay.render_line("oops {", {}) == "oops {"
    mr = templates.template("MR")
    assert mr.top_left == overlay.DEFAULT_TEMPLATE.top_left


def test_header_values_are_readable() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.StudyDate = "20240131"
    ds.StudyTime = "101502.5"
    values = overlay.header_values(ds)
    assert values["PatientName"] == "Doe Jane"
    assert values["StudyDate"] == "2024-01-31"
    assert values["StudyTime"] == "10:15:02"


def test_presets_and_file_windows() -> None:
    names = [p.name for p in presets.presets_for("ct")]
    assert names == ["Lung", "Mediastinum", "Bone", "Brain", "Abdomen"]
    ds = Dataset()
    ds.WindowCenter = [40, 300]
    ds.WindowWidth = [400, 0]
    ds.WindowCenterWidthExplanation = ["SOFT", "BAD"]
    assert presets.file_windows(ds) == [presets.WindowPreset("SOFT", Window(40, 400))]
    values = np.concatenate([np.full(5000, -1024.0), np.linspace(0, 100, 5000)])
    window = presets.auto_window(values.reshape(100, 100))
    assert 45 < window.center < 55 and 90 < window.width <= 100


# -- documents ----------------------------------------------------------------------


def test_report_lines_of_a_real_sr() -> None:
    ds = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    lines = documents.report_lines(ds)
    assert lines[0].text == "Diagnosis" and lines[0].heading
    texts = [line.text for line in lines]
    assert "Diameter: 3 cm" in texts
    assert any("Verified by Riesmeier" in t for t in texts)
    assert documents.object_kind(ds.SOPClassUID) == documents.ObjectKindValues.REPORT


def test_waveforms_of_a_real_ecg() -> None:
    ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    groups = documents.waveforms(ds)
    assert len(groups) == 2
    first = groups[0]
    assert len(first.channels) == 12 and first.frequency == 1000
    assert first.channels[0].label == "Lead I (Einthoven)"
    assert first.channels[0].unit == "uV"
    assert first.duration == pytest.approx(10.0)
    # Channel sensitivity 1.25 uV per unit applied.
    item = ds.WaveformSequence[0]
    raw = np.frombuffer(item.WaveformData, dtype="<i2").reshape(-1, 12)[:, 0]
    np.testing.assert_allclose(first.channels[0].samples, raw * 1.25)


def test_pdf_pages_render() -> None:
    ds = pydicom.dcmread(DATA / "orthanc-tests/sample-pdf.dcm")
    pages = documents.render_pdf(documents.pdf_bytes(ds), dpi=72)
    assert len(pages) == 1
    assert pages[0].shape == (792, 612, 3)  # US Letter at 72 dpi
    assert pages[0].min() < 128 < pages[0].max()  # text on white
    broken = Dataset()
    broken.EncapsulatedDocument = b"not a pdf"
    with pytest.raises(documents.DocumentError, match="not a PDF"):
        documents.pdf_bytes(broken)


def test_displayed_area_corners_are_those_shown_after_rotation() -> None:
    # PS3.3 C.10.4: top left and bottom right as displayed, in the pixel
    # positions of the unrotated image.
    display = DisplayState()
    size, view = (100, 100), (100, 100)
    display.zoom_at(2.0, (50, 50), display.transform("1", 1, size, view), view)
    (area,) = display.state.displayed_areas
    assert (area.top_left, area.bottom_right) == ((26, 26), (75, 75))
    display.rotate(90)  # the image's bottom left is now shown top left
    (area,) = display.state.displayed_areas
    assert (area.top_left, area.bottom_right) == ((26, 75), (75, 26))
    display.flip_horizontal()  # rotation 270 after a flip: a transposition
    (area,) = display.state.displayed_areas
    assert (area.top_left, area.bottom_right) == ((26, 26), (75, 75))
    again = DisplayState()
    again.adopt(display.state)
    t = again.transform("1", 1, size, view)
    assert t.scale == pytest.approx(2.0, rel=0.03)


def test_frame_cache_stays_within_its_budget_and_reads_ahead_in_order() -> None:
    from jivex_client.viewer.loader import FrameCache, FrameRef, LoadedFrame, ahead

    cache = FrameCache(max_bytes=3 * 1024 * 1024)
    for i in range(10):
        image = np.zeros((1024, 1024), dtype=np.uint8)  # 1 MiB each
        cache.put(LoadedFrame(FrameRef(f"/x/{i}", 0, str(i)), None, image))
        assert cache.used_bytes <= cache.max_bytes
    assert len(cache) == 3
    assert cache.get(FrameRef("/x/9", 0, "9")) is not None
    assert cache.get(FrameRef("/x/0", 0, "0")) is None  # the oldest went first
    assert ahead(5, 10, 1, 3, 2) == [6, 7, 8, 4, 3]
    assert ahead(5, 10, -1, 3, 1) == [4, 3, 2, 6]
    assert ahead(9, 10, 1, 3, 1) == [8]


def _slices(tmp_path: Path, count: int) -> list[Path]:
    from tests.viewer_data import phantom, write_series

    return write_series(
        tmp_path,
        count,
        lambda i: phantom(32, 32),
        lambda i: (0.0, 0.0, 2.0 * i),
        study="1.2.3",
        series="1.2.3.4",
        frame_of_reference="1.2.3.5",
    )


def test_series_headers_are_read_paced_and_stop_when_asked(tmp_path: Path) -> None:
    import threading

    from jivex_client.viewer.loader import FrameRef, read_planes

    files = _slices(tmp_path, 4)
    refs = [FrameRef(str(f), 0, str(i)) for i, f in enumerate(files)]
    paced = []
    planes, headers = read_planes(refs, threading.Event(), lambda: paced.append(1))
    assert len(paced) == 4  # the pace is asked before each file
    assert [round(p.position[2]) for p in planes] == [0, 2, 4, 6]
    assert headers[str(files[0])].PhotometricInterpretation == "MONOCHROME2"
    stop = threading.Event()

    def stop_after_two() -> None:
        paced.append(1)
        if len(paced) == 2:
            stop.set()  # another series is shown while the second is read

    paced.clear()
    # Stopped: the files after it are not read.
    assert read_planes(refs, stop, stop_after_two) is None
    assert len(paced) == 2


def test_a_series_thumbnail_skips_images_that_do_not_render(tmp_path: Path) -> None:
    from jivex_client.viewer.loader import (
        FrameRef,
        series_thumbnail,
        thumbnail_order,
    )
    from jivex_core.imaging.render import RenderError

    assert thumbnail_order(5) == [2, 3, 4, 1, 0]
    assert thumbnail_order(20, 4) == [10, 11, 12, 13]
    assert thumbnail_order(0) == []
    files = _slices(tmp_path, 5)
    ds = pydicom.dcmread(files[2])
    del ds.Rows  # the middle image cannot be rendered
    ds.save_as(files[2])
    refs = [FrameRef(str(f), 0, str(i)) for i, f in enumerate(files)]
    pixels, index = series_thumbnail(refs, 16)
    assert index == 3 and pixels.shape == (16, 16)
    ds = pydicom.dcmread(files[3])
    ds.BitsStored = 20
    ds.save_as(files[3])
    assert series_thumbnail(refs, 16)[1] == 4
    for path in files:
        path.write_bytes(b"not DICOM")
    with pytest.raises(RenderError, match="cannot read"):
        series_thumbnail(refs, 16)


def test_patient_orientation_letters() -> None:
    """PS3.3 C.7.6.1.1.1: rows then columns; the first letter predominates."""
    chest = geometry.patient_orientation(["L", "F"])
    assert (chest.label(1, 0), chest.label(-1, 0)) == ("L", "R")
    assert (chest.label(0, 1), chest.label(0, -1)) == ("F", "H")
    oblique = geometry.patient_orientation("LP\\FL")
    assert oblique.label(1, 0) == "LP"
    assert oblique.label(-1, 0) == "RA"
    assert oblique.label(0, 1) == "FL"
    for bad in (None, "", "L", ["L"], ["L", ""], ["CR", "D"], ["L", "F", "A"]):
        assert geometry.patient_orientation(bad) is None, bad
    ds = Dataset()
    ds.PatientOrientation = ["A", "F"]
    assert geometry.frame_orientation(ds).label(1, 0) == "A"
    # A plane (Image Orientation (Patient)) wins over Patient Orientation.
    plane = geometry.frame_orientation(ds, 0, AXIAL)
    assert (plane.label(1, 0), plane.label(0, 1)) == ("L", "P")


def test_a_view_past_the_top_left_edge_stores_the_part_shown_at_its_scale() -> None:
    """Displayed Area corners stay at 1 or above (PS3.3 C.10.4): margin
    beyond the image is stored as the visible part, MAGNIFY at the scale."""
    display = DisplayState()
    size, view = (100, 80), (400, 400)
    t = display.transform("1", 1, size, view)
    display.zoom_at(2.0, (200, 200), t, view)
    t = display.transform("1", 1, size, view)
    display.pan_by(300, 250, t, view)  # the image's top left corner moves in
    shown = display.transform("1", 1, size, view)
    assert shown.map(0, 0)[0] > 0 and shown.map(0, 0)[1] > 0  # margin shows
    (area,) = display.state.displayed_areas
    assert min(*area.top_left, *area.bottom_right) >= 1
    assert area.size_mode == PresentationSizeModeValues.MAGNIFY
    assert area.magnification == pytest.approx(shown.scale)
    assert area.top_left == (1, 1)
    # The visible part: up to where the viewport's right and bottom edges cut.
    inverse = shown.inverse()
    assert area.bottom_right[0] == pytest.approx(inverse.map(400, 0)[0], abs=1)
    assert area.bottom_right[1] == pytest.approx(inverse.map(0, 400)[1], abs=1)
    # The view itself does not move; a reader of the state sees the scale.
    assert display.transform("1", 1, size, view) == shown
    again = DisplayState()
    again.adopt(display.state)
    assert again.transform("1", 1, size, (300, 500)).scale == pytest.approx(shown.scale)
    # Turned and flipped, the corners are still pixels of the image.
    display.rotate(90)
    display.flip_horizontal()
    (area,) = display.state.displayed_areas
    assert min(*area.top_left, *area.bottom_right) >= 1
    # Panned so that nothing of the image is in view: one pixel, not less.
    t = display.transform("1", 1, size, view)
    display.pan_by(2000, 2000, t, view)
    (area,) = display.state.displayed_areas
    assert min(*area.top_left, *area.bottom_right) >= 1


def test_labels_are_transliterated_and_texts_limited() -> None:
    from jivex_client.viewer.dialogs import text_problem, transliterate_label

    assert transliterate_label("chest review") == ("CHEST REVIEW", [])
    assert transliterate_label("lösion befund") == ("LOSION BEFUND", ["ö → O"])
    label, notes = transliterate_label("Région é ß Ω")
    assert label == "REGION E SS _"
    assert notes == ["é → E", "ß → SS", "Ω → _"]
    label, notes = transliterate_label("abcdefghijklmnopqrstu")
    assert label == "ABCDEFGHIJKLMNOP" and notes == ["cut to 16 characters"]
    assert transliterate_label("  ") == ("UNNAMED", [])
    assert text_problem("x" * 1024) == ""
    assert "1025 characters" in text_problem("x" * 1025)


def test_optional_parts_of_a_corner_line_go_with_their_fields() -> None:
    line = "[{KVP} kV] [{XRayTubeCurrent} mA]"
    assert overlay.render_line(line, {"KVP": "120", "XRayTubeCurrent": "200"}) == (
        "120 kV 200 mA"
    )
    assert overlay.render_line(line, {"KVP": "120"}) == "120 kV"
    assert overlay.render_line(line, {"XRayTubeCurrent": "200"}) == "200 mA"
    assert overlay.render_line(line, {}) == ""
    mr = "[TR {RepetitionTime}] [TE {EchoTime}]"
    assert overlay.render_line(mr, {"EchoTime": "12"}) == "TE 12"
    # The blanks inside values stay; a bracket without fields stays as text.
    assert overlay.render_line("{image} [x{KVP}]", {"image": "Im: 1/2  Fr: 3/4"}) == (
        "Im: 1/2  Fr: 3/4"
    )
    assert overlay.render_line("[note] {KVP}", {"KVP": "80"}) == "note 80"
    ct = overlay.OverlayTemplates().template("CT")
    texts = overlay.corner_texts(ct, {"KVP": "120", "image": "Im: 1/1"})
    assert texts["bottom_left"].splitlines()[-1] == "120 kV"


def test_which_images_a_grayscale_state_can_apply_to() -> None:
    from jivex_client.viewer.references import (
        check_images,
        gsps_problem,
        left_out_text,
        restrict_state,
    )
    from jivex_core.imaging.presentation import (
        Annotation,
        DisplayedArea,
        PresentationState,
    )

    def header(**values: object) -> Dataset:
        ds = Dataset()
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.SamplesPerPixel = 1
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated, ds.BitsStored = 16, 12
        for keyword, value in values.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        return ds

    assert gsps_problem(header()) == ""
    assert gsps_problem(header(PhotometricInterpretation="MONOCHROME1")) == ""
    assert "RGB" in gsps_problem(header(PhotometricInterpretation="RGB"))
    assert "not grey" in gsps_problem(header(SamplesPerPixel=3))
    assert "Rows" in gsps_problem(header(Rows=None))
    assert "Bits Stored 20" in gsps_problem(header(BitsStored=20))
    assert gsps_problem(None) == "cannot be read"
    refs = [ImageRef("1.2", str(n), "9") for n in range(4)]
    check = check_images(
        refs,
        {"0": "/a", "1": "/b", "2": "/c"},
        {"/a": header(), "/b": header(PhotometricInterpretation="RGB"), "/c": header()},
        {"2": "no decoder"},
    )
    assert [r.SOPInstanceUID for r in check.usable] == ["0"]
    assert [(r.SOPInstanceUID, why[:3]) for r, why in check.left_out] == [
        ("1", "RGB"),
        ("2", "can"),
    ]
    assert [r.SOPInstanceUID for r in check.missing] == ["3"] and check.total == 4
    assert left_out_text(check.left_out, 1).startswith("2 (RGB, not grey; and 1")
    state = PresentationState(
        images=refs,
        voi=[VoiSetting((refs[1],), Window(1, 2)), VoiSetting((), Window(3, 4))],
        displayed_areas=[DisplayedArea((1, 1), (8, 8), images=(refs[0], refs[1]))],
        annotations=[Annotation("A", (refs[1],)), Annotation("A", (refs[0],))],
    )
    kept = restrict_state(state, [refs[0]])
    assert kept.images == [refs[0]]
    assert [v.window for v in kept.voi] == [Window(3, 4)]
    assert kept.displayed_areas[0].images == (refs[0],)
    assert [a.images for a in kept.annotations] == [(refs[0],)]
    assert len(state.annotations) == 2  # the state itself is left as it was
