"""Tests of jivex_core.imaging.render on real files."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from jivex_core.imaging.render import (
    RenderError,
    Window,
    apply_window,
    prepare_frame,
    range_window,
    render,
)

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
