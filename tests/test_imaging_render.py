"""Tests of jivex_core.imaging.render on real files."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from jivex_core.imaging.render import (
    RenderError,
    Window,
    apply_window,
    prepare_frame,
    range_window,
    render,
)
from tests.helpers import dcmtk
from tests.synthetic import image, save

DATA = Path("/work/shared/data")


def _linear_by_hand(x: float, c: float, w: float) -> int:
    """PS3.3 C.11.2.1.2.1 written out as the standard gives it, y in 0..255."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0
    if x > c - 0.5 + (w - 1) / 2:
        return 255
    return round(((x - (c - 0.5)) / (w - 1) + 0.5) * 255)


def test_ct_rescale_gives_hounsfield_units() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    frame = prepare_frame(ds)
    stored = ds.pixel_array.astype(np.float64)
    expected = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert float(ds.RescaleIntercept) == -1024
    np.testing.assert_array_equal(frame.values, expected.astype(np.float32))
    assert frame.values[0, 0] == ds.pixel_array[0, 0] - 1024


def test_ct_soft_tissue_window_matches_the_standard_formula() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    frame = prepare_frame(ds)
    out = frame.render(Window(40, 400))
    assert out.dtype == np.uint8
    hu = frame.values
    rng = np.random.default_rng(7)
    for r, c in rng.integers(0, hu.shape[0], size=(300, 2)):
        assert out[r, c] == _linear_by_hand(float(hu[r, c]), 40, 400), (r, c)
    # The window saturates: the image has values on both sides of it.
    assert (out == 0).any() and (out == 255).any()


def test_default_window_is_the_first_window_of_the_file() -> None:
    ds = pydicom.dcmread(DATA / "dcm4che/MR01.dcm")
    frame = prepare_frame(ds)
    assert frame.default_window == Window(844, 2677)


def test_without_a_window_the_value_range_is_used() -> None:
    ds = pydicom.dcmread(DATA / "dcm4che/MR01.dcm")
    del ds.WindowCenter
    del ds.WindowWidth
    frame = prepare_frame(ds)
    out = frame.render()
    lowest = frame.values == frame.values.min()
    highest = frame.values == frame.values.max()
    assert (out[lowest] == 0).all()
    assert (out[highest] == 255).all()
    assert frame.default_window == range_window(frame.values)


def test_monochrome1_is_inverted_after_the_window() -> None:
    path = DATA / "dwv/gdcm-CR-MONO1-10-chest.dcm"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    inverted = render(ds)
    as_mono2 = pydicom.dcmread(path)
    as_mono2.PhotometricInterpretation = "MONOCHROME2"
    plain = render(as_mono2)
    np.testing.assert_array_equal(inverted.astype(int), 255 - plain.astype(int))
    # The lowest modality value (least attenuation) is white in MONOCHROME1.
    values = prepare_frame(ds).values
    assert inverted[values == values.min()].min() > 200


def test_signed_pixels_are_read_signed() -> None:
    ds = pydicom.dcmread(DATA / "dcm4che/test16signed.dcm")
    assert ds.PixelRepresentation == 1
    frame = prepare_frame(ds)
    raw = np.frombuffer(ds.PixelData, dtype="<i2").reshape(ds.Rows, ds.Columns)
    assert raw.min() < 0
    np.testing.assert_array_equal(frame.values, raw.astype(np.float32))


def test_rgb_native_keeps_the_colours() -> None:
    ds = pydicom.dcmread(get_testdata_file("SC_rgb.dcm"))
    out = render(ds)
    assert out.shape == (100, 100, 3) and out.dtype == np.uint8
    assert out[5, 50].tolist() == [255, 0, 0]
    assert out[25, 50].tolist() == [0, 255, 0]
    assert out[45, 50].tolist() == [0, 0, 255]


def test_jpeg_baseline_ybr_is_converted_once() -> None:
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    assert ds.PhotometricInterpretation == "YBR_FULL"
    out = render(ds).astype(int)
    # Lossy coding moves values by a few levels; a second YBR->RGB
    # conversion would move them by far more.
    for row, rgb in ((5, [255, 0, 0]), (25, [0, 255, 0]), (45, [0, 0, 255])):
        assert np.abs(out[row, 50] - rgb).max() <= 8, out[row, 50]


def test_rle_ybr_full_is_converted_to_rgb() -> None:
    ds = pydicom.dcmread(DATA / "dcm4che/YBR_FULL-RLE.dcm")
    out = render(ds)
    assert out.shape == (ds.Rows, ds.Columns, 3)
    reference = pydicom.pixels.convert_color_space(
        pydicom.pixels.pixel_array(ds, raw=True),
        "YBR_FULL",
        "RGB",
    )
    np.testing.assert_array_equal(out, reference)


def test_undecodable_pixels_raise_render_error_with_reason() -> None:
    ds = pydicom.dcmread(DATA / "dcm4che/will-jxl.dcm")
    with pytest.raises(RenderError, match=re.escape("1.2.840.10008.1.2.4.111")):
        prepare_frame(ds)


def test_missing_frame_is_reported() -> None:
    ds = pydicom.dcmread(DATA / "dcm4che/MR01.dcm")
    with pytest.raises(RenderError, match="frame 3 does not exist"):
        prepare_frame(ds, 3)


def test_width_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="below 1"):
        Window(0, 0)


def test_window_change_is_fast_enough_for_dragging() -> None:
    ds = pydicom.dcmread(DATA / "dcm4che/test16signed.dcm")
    frame = prepare_frame(ds)
    assert frame.values.shape == (512, 512)
    start = time.perf_counter()
    for i in range(120):
        frame.render(Window(100 + i, 400 + i))
    per_frame = (time.perf_counter() - start) / 120
    assert per_frame < 1 / 60


def test_apply_window_width_one_is_a_threshold() -> None:
    values = np.array([[9.0, 9.5, 9.6, 10.0]], dtype=np.float32)
    out = apply_window(values, Window(10, 1))
    assert out.tolist() == [[0, 0, 255, 255]]


# -- VOI functions, LUTs and presets ----------------------------------------


@pytest.mark.parametrize("function", ["LINEAR", "SIGMOID"])
@pytest.mark.parametrize(
    ("center", "width"), [(40, 400), (0.5, 1), (-600, 1501), (100, 2)]
)
def test_voi_functions_match_dcmtk(tmp_path, function, center, width) -> None:
    ramp = (np.arange(4096, dtype=np.int16) - 1024).reshape(64, 64)
    ds = image(
        ramp,
        signed=True,
        WindowCenter=center,
        WindowWidth=width,
        VOILUTFunction=function,
    )
    path = save(ds, tmp_path / "ramp.dcm")
    out = tmp_path / "ramp.png"
    subprocess.run(
        [dcmtk("dcm2pnm"), "+on", "+Wi", "1", str(path), str(out)],
        check=True,
        capture_output=True,
    )
    theirs = np.asarray(Image.open(out)).astype(int)
    assert np.abs(render(ds).astype(int) - theirs).max() <= 1


def test_linear_exact_and_sigmoid_by_hand() -> None:
    # DCMTK 3.6.7 does not know LINEAR_EXACT: PS3.3 C.11.2.1.3.2 by hand.
    values = np.array([[-10, 0, 99, 100, 101, 200, 210]], dtype=np.int16)
    ds = image(values, signed=True, WindowCenter=100, WindowWidth=200)
    ds.VOILUTFunction = "LINEAR_EXACT"
    expected = [0, 0, 126, 128, 129, 255, 255]  # ((x - 100) / 200 + 0.5) * 255
    assert render(ds)[0].tolist() == expected
    ds.VOILUTFunction = "SIGMOID"  # C.11.2.1.3.1
    sigmoid = [round(255 / (1 + np.exp(-4 * (x - 100) / 200))) for x in values[0]]
    assert render(ds)[0].tolist() == sigmoid


def test_windows_of_the_file_are_presets_with_explanations() -> None:
    ds = image(
        np.zeros((2, 2), np.int16),
        signed=True,
        WindowCenter=[40, -600, 10],
        WindowWidth=[400, 1500, 0],  # a width below 1 is no window
        WindowCenterWidthExplanation=["SOFT TISSUE", "LUNG"],
    )
    frame = prepare_frame(ds)
    assert [p.label for p in frame.windows] == ["SOFT TISSUE", "LUNG"]
    assert [p.window for p in frame.windows] == [Window(40, 400), Window(-600, 1500)]
    assert frame.default_window == Window(40, 400)
    # Rendering a preset is rendering its window.
    np.testing.assert_array_equal(
        frame.render(frame.windows[1]), frame.render(Window(-600, 1500))
    )


def _lut_item(descriptor, data, **attributes) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = descriptor
    item.LUTData = data
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def test_modality_lut_sequence_by_hand() -> None:
    stored = np.array([[0, 1, 2, 3, 9]], dtype=np.uint16)
    ds = image(stored)
    # Entries for stored values 1..4 (first mapped 1); outside: clamped.
    item = _lut_item([4, 1, 16], [100, 200, 400, 800], ModalityLUTType="OD")
    ds.ModalityLUTSequence = Sequence([item])
    frame = prepare_frame(ds)
    assert frame.values[0].tolist() == [100, 100, 200, 400, 800]
    assert frame.units == "OD"


def test_voi_lut_sequence_by_hand_and_as_default() -> None:
    stored = np.array([[0, 1, 2, 3]], dtype=np.uint16)
    ds = image(stored)
    # 8-bit entries: output scaled by 255 / (2^8 - 1).
    item = _lut_item([4, 0, 8], [0, 10, 20, 255], LUTExplanation="CUSTOM")
    ds.VOILUTSequence = Sequence([item])
    frame = prepare_frame(ds)
    assert [p.label for p in frame.windows] == ["CUSTOM"]
    assert frame.render()[0].tolist() == [0, 10, 20, 255]
    # MONOCHROME1 inverts the LUT's output.
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert render(ds)[0].tolist() == [255, 245, 235, 0]


def test_first_render_of_a_ct_slice_takes_a_few_ms() -> None:
    ds = pydicom.dcmread(DATA / "cornerstone-wado/CTImage.dcm")
    _ = ds.PixelData
    prepare_frame(ds).render()  # imports and caches warmed up
    times = []
    for _ in range(7):
        start = time.perf_counter()
        prepare_frame(ds).render()
        times.append(time.perf_counter() - start)
    assert sorted(times)[3] < 0.025, times
