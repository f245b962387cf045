"""Pixel data the file does not hold, and decoders that fail.

The policy (docs/limitations.md, README):

- Pixel Data one byte short (a value cut to an even length instead of
  padded) or longer than needed displays as it is, without a warning
  (test_imaging_pitfalls);
- when more is missing, the pixels the file does not hold are black in the
  8-bit output whatever the window, inversion, VOI function or presentation
  state, and the frame says how much is missing;
- a compressed frame cut short is refused with a RenderError: the decoder
  would invent the rows it did not get;
- a decoder's failure keeps the decoder's own reason, on one line.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.uid import RLELossless

from jivex_core.imaging.luts import VoiPreset
from jivex_core.imaging.presentation import ImageRef, LookupTable, PresentationState
from jivex_core.imaging.render import (
    RenderError,
    Window,
    prepare_frame,
    range_window,
    render,
    render_frame,
)
from tests.helpers import SHARED_DATA
from tests.synthetic import image

CT_JPEG_LOSSLESS = (
    SHARED_DATA / "cornerstone-wado/"
    "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm"
)
CT_J2K = (
    SHARED_DATA / "cornerstone-wado/"
    "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm"
)


def _ct_pixels() -> np.ndarray:
    # Every value from -1000 to 1047 twice: a known range in each half.
    return (np.arange(64 * 64, dtype=np.int32).reshape(64, 64) % 2048 - 1000).astype(
        np.int16
    )


def _ct(data: bytes | None = None, **attributes) -> pydicom.Dataset:
    pixels = _ct_pixels()
    return image(
        None if data is not None else pixels,
        data=data,
        rows=64,
        columns=64,
        signed=True,
        RescaleSlope=1,
        RescaleIntercept=0,
        **attributes,
    )


def _half() -> pydicom.Dataset:
    return _ct(_ct_pixels().tobytes()[: 64 * 64])  # 4096 of the 8192 bytes


def _half_monochrome1() -> pydicom.Dataset:
    return _ct(
        _ct_pixels().tobytes()[: 64 * 64], PhotometricInterpretation="MONOCHROME1"
    )


def test_half_missing_says_how_much_and_marks_the_pixels() -> None:
    frame = prepare_frame(_half())
    assert frame.warnings == [
        "Pixel Data holds 4096 of 8192 bytes: the rest shows black"
    ]
    assert frame.incomplete and frame.missing is not None
    assert frame.missing[:32].sum() == 0 and frame.missing[32:].all()
    # The values the file holds are read as they are; the default window is
    # theirs, not pulled by the missing pixels.
    full = prepare_frame(_ct())
    np.testing.assert_array_equal(frame.values[:32], full.values[:32])
    assert frame.default_window == range_window(full.values[:32])
    result = render_frame(_half())
    assert result.incomplete and result.warnings == tuple(frame.warnings)


@pytest.mark.parametrize(
    "window",
    [
        None,
        Window(40, 400),
        Window(-5000, 1),  # everything above the threshold: white
        Window(0, 100000),
        VoiPreset("", Window(0, 200), "SIGMOID"),
        VoiPreset("", Window(0, 200), "LINEAR_EXACT"),
    ],
    ids=["default", "ct", "threshold", "wide", "sigmoid", "linear exact"],
)
def test_missing_pixels_are_black_whatever_the_window(window) -> None:
    ours = render(_half(), 0, window)
    reference = render(_ct(), 0, window)
    assert not ours[32:].any()
    np.testing.assert_array_equal(ours[:32], reference[:32])
    # MONOCHROME1 inverts after the VOI, but what is missing stays black.
    inverted = render(_half_monochrome1(), 0, window)
    assert not inverted[32:].any()
    difference = inverted[:32].astype(int) - (255 - reference[:32].astype(int))
    assert np.abs(difference).max() <= 1


def test_missing_pixels_are_black_under_a_presentation_state() -> None:
    ds = _half()
    ref = ImageRef(str(ds.SOPClassUID), str(ds.SOPInstanceUID))
    for state in (
        PresentationState(images=[ref], presentation_shape="INVERSE"),
        PresentationState(
            images=[ref],
            presentation_lut=LookupTable(0, 12, tuple(range(4095, -1, -1))),
        ),
    ):
        shown = render(ds, 0, None, state)
        assert not shown[32:].any()
        assert shown[:32].any()


def test_a_cut_inside_a_pixel_marks_that_pixel() -> None:
    # Three bytes short of a 16-bit frame: the last pixel has no byte, the
    # one before only its low byte; both are missing.
    data = _ct_pixels().tobytes()[:-3]
    frame = prepare_frame(_ct(data))
    assert frame.warnings == [
        "Pixel Data holds 8189 of 8192 bytes: the rest shows black"
    ]
    assert frame.missing is not None
    assert np.flatnonzero(frame.missing.ravel()).tolist() == [4094, 4095]


@pytest.mark.parametrize(
    ("planar", "keep", "missing"),
    [
        # R1G1B1R2G2B2...: 30 of 48 bytes hold the first 10 pixels whole.
        (0, 30, list(range(10, 16))),
        # RRR...GGG...BBB...: with 40 bytes blue is there for 8 pixels only.
        (1, 40, list(range(8, 16))),
    ],
)
def test_missing_colour_pixels_are_black(planar, keep, missing) -> None:
    rgb = np.full((4, 4, 3), 200, np.uint8)
    samples = rgb.transpose(2, 0, 1) if planar else rgb
    data = np.ascontiguousarray(samples).tobytes()[:keep]
    ds = image(None, data=data, rows=4, columns=4, photometric="RGB", bits_allocated=8)
    ds.PlanarConfiguration = planar
    frame = prepare_frame(ds)
    assert frame.warnings == [
        f"Pixel Data holds {keep} of 48 bytes: the rest shows black"
    ]
    shown = render(ds).reshape(16, 3)
    assert np.flatnonzero(~shown.any(axis=1)).tolist() == missing
    assert (shown[: missing[0]] == 200).all()


def test_the_frame_a_multi_frame_object_misses_is_named() -> None:
    pixels = np.arange(3 * 16, dtype=np.uint16).reshape(3, 4, 4)
    data = pixels.tobytes()[: 2 * 32 + 16]  # frame 3 has half its bytes
    ds = image(None, data=data, rows=4, columns=4, NumberOfFrames=3)
    assert prepare_frame(ds, 1).warnings == []
    third = prepare_frame(ds, 2)
    assert third.warnings == [
        "Pixel Data holds 16 of the 32 bytes of frame 3: the rest shows black"
    ]
    assert third.missing is not None and third.missing[2:].all()
    assert not third.missing[:2].any()


def test_float_pixel_data_cut_short() -> None:
    values = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(4, 4)
    ds = image(values.astype(np.uint16), bits_allocated=32)
    del ds.PixelData
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.FloatPixelData = values.tobytes()[:32]
    frame = prepare_frame(ds)
    assert frame.warnings == ["Pixel Data holds 32 of 64 bytes: the rest shows black"]
    assert not render(ds)[2:].any()


def _cut(path, keep: float) -> pydicom.Dataset:
    ds = pydicom.dcmread(path)
    fragments = list(generate_fragments(ds.PixelData))[1:]
    stream = b"".join(fragments)
    ds.PixelData = encapsulate([stream[: int(len(stream) * keep) // 2 * 2]])
    return ds


@pytest.mark.parametrize("path", [CT_JPEG_LOSSLESS, CT_J2K], ids=["jpeg", "j2k"])
def test_a_compressed_frame_cut_short_is_refused(path) -> None:
    assert render(pydicom.dcmread(path)).shape == (512, 512)
    message = re.escape("the compressed data of frame 1 is cut short (") + (
        r".*\): its \d+ bytes end without the end marker FF D9, so part of the "
        "image is missing"
    )
    for entry in (prepare_frame, render):
        with pytest.raises(RenderError, match=message):
            entry(_cut(path, 1 / 3))


def test_a_decoder_failure_keeps_the_decoders_reason_on_one_line() -> None:
    ds = pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm"))
    with pytest.raises(RenderError) as caught:
        render(ds)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("the pixel data cannot be decoded (JPEG Extended")
    # pydicom's own first line says only that every plugin failed; the
    # plugin's reason is what the reader needs.
    assert "plugins:" not in text
    assert "pylibjpeg: libjpeg error code" in text
    assert "misplaced marker" in text


def test_a_decoded_frame_of_the_wrong_size_is_named() -> None:
    ds = image(np.arange(64, dtype=np.uint16).reshape(8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(RLELossless)
    ds.Rows = 16
    with pytest.raises(RenderError, match="doesn't match the expected amount"):
        render(ds)


def test_a_decoder_that_panics_gives_a_render_error() -> None:
    # pylibjpeg-rle (Rust) panics on a segment longer than Rows x Columns;
    # pyo3's PanicException is not an Exception and must not escape.
    ds = image(np.arange(64, dtype=np.uint16).reshape(8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(RLELossless)
    ds.Rows = 4
    with pytest.raises(RenderError, match=re.escape("cannot be decoded (RLE")):
        render(ds)
