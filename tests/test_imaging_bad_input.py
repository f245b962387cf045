"""Bad input: a RenderError whose message names what is wrong, never another
exception, from both public entries (prepare_frame and render)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.tag import Tag

from jivex_core.imaging.presentation import DisplayedArea, PresentationState
from jivex_core.imaging.render import RenderError, prepare_frame, render
from tests.helpers import SHARED_DATA
from tests.synthetic import image


def grey(**attributes) -> Dataset:
    return image(np.arange(16, dtype=np.uint16).reshape(4, 4), **attributes)


def _without(ds: Dataset, keyword: str) -> Dataset:
    del ds[keyword]
    return ds


def _set(ds: Dataset, **attributes) -> Dataset:
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _jpeg_garbage() -> Dataset:
    ds = grey(bits_allocated=8, syntax="1.2.840.10008.1.2.4.50")
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + bytes(100)])
    ds["PixelData"].VR = "OB"
    return ds


def _odd_ybr_422() -> Dataset:
    ds = image(np.zeros((2, 3, 3), np.uint8), photometric="RGB", bits_allocated=8)
    return _set(ds, PhotometricInterpretation="YBR_FULL_422")


CASES = [
    (
        "no pixel data",
        lambda: _without(grey(), "PixelData"),
        "the object has no pixel data",
    ),
    ("missing Rows", lambda: _without(grey(), "Rows"), "Rows (0028,0010) is missing"),
    ("zero Columns", lambda: _set(grey(), Columns=0), "the image is 4 x 0 pixels"),
    (
        "Rows not a number",
        lambda: _set(grey(), Rows="abc"),
        "Rows (0028,0010) is not a number",
    ),
    (
        "bits stored above bits allocated",
        lambda: grey(bits_allocated=8, bits_stored=16, high_bit=7),
        "Bits Stored (0028,0101) 16 is greater than Bits Allocated (0028,0100) 8",
    ),
    (
        "bits allocated 24",
        lambda: _set(grey(), BitsAllocated=24),
        "Bits Allocated (0028,0100) 24 is not 1, 8, 16 or 32",
    ),
    (
        "high bit outside",
        lambda: grey(bits_stored=12, high_bit=16),
        "High Bit (0028,0102) 16 does not fit 12 bits stored in 16 bits allocated",
    ),
    (
        "unknown photometric interpretation",
        lambda: _set(grey(), PhotometricInterpretation="CMYK"),
        "Photometric Interpretation (0028,0004) 'CMYK' is not supported",
    ),
    (
        "samples that do not fit",
        lambda: _set(grey(), SamplesPerPixel=3),
        "Samples per Pixel (0028,0002) is 3, but MONOCHROME2 needs 1",
    ),
    (
        "pixel representation 2",
        lambda: _set(grey(), PixelRepresentation=2),
        "Pixel Representation (0028,0103) 2 is not 0 or 1",
    ),
    ("empty pixel data", lambda: _set(grey(), PixelData=b""), "Pixel Data"),
    (
        "pixel data that cannot be decoded",
        _jpeg_garbage,
        "the pixel data cannot be decoded (JPEG Baseline (Process 1))",
    ),
    (
        "a transfer syntax without decoder",
        lambda: _set(
            grey(syntax="1.2.840.10008.1.2.4.111"),
            PixelData=encapsulate([bytes(10)]),
        ),
        "no decoder for transfer syntax 1.2.840.10008.1.2.4.111",
    ),
    (
        "palette without its tables",
        lambda: grey(photometric="PALETTE COLOR"),
        "Red Palette Color Lookup Table Descriptor (0028,1101) is missing",
    ),
    (
        "an image too large",
        lambda: _set(grey(), Rows=65535, Columns=65535),
        "the image is 65535 x 65535 pixels (Rows x Columns), too large to render",
    ),
    (
        "subsampled chroma with an odd number of columns",
        _odd_ybr_422,
        "YBR_FULL_422 needs an even number of columns, not 3",
    ),
]


@pytest.mark.parametrize(("case", "make", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_what_is_wrong(case, make, message) -> None:
    for entry in (prepare_frame, render):
        with pytest.raises(RenderError, match=re.escape(message)):
            entry(make())


def test_missing_frame_is_reported() -> None:
    ds = pydicom.dcmread(SHARED_DATA / "dcm4che/MR01.dcm")
    with pytest.raises(RenderError, match="frame 3 does not exist; the object has 1"):
        prepare_frame(ds, 3)


def test_frames_missing_from_pixel_data() -> None:
    ds = _set(grey(), NumberOfFrames=3)
    assert render(ds, 0).shape == (4, 4)
    message = "Pixel Data holds 32 bytes: frame 2 (from byte 32) is missing"
    with pytest.raises(RenderError, match=re.escape(message)):
        render(ds, 1)


def test_real_undecodable_files() -> None:
    ds = pydicom.dcmread(SHARED_DATA / "dcm4che/will-jxl.dcm")
    with pytest.raises(RenderError, match=re.escape("1.2.840.10008.1.2.4.111")):
        render(ds)
    ds = pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm"))
    with pytest.raises(
        RenderError, match=re.escape("cannot be decoded (JPEG Extended")
    ):
        render(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(SHARED_DATA / "dwv/dwv-test_no-number-rows.dcm")
    with pytest.raises(RenderError, match=re.escape("Rows (0028,0010) is missing")):
        render(ds)


def test_bad_presentation_states_are_render_errors() -> None:
    ds = grey()
    with pytest.raises(RenderError, match="rotation 45 is not a multiple of 90"):
        render(ds, state=PresentationState(rotation=45))


def test_displayed_area_corners_name_a_rectangle_whatever_their_order() -> None:
    """The corners are the pixels shown top left and bottom right after the
    rotation and flip (PS3.3 C.10.4); a state whose corners do not match its
    transformation (another system's) still shows that rectangle."""
    ds = grey()
    swapped = PresentationState(displayed_areas=[DisplayedArea((3, 3), (1, 1))])
    upright = PresentationState(displayed_areas=[DisplayedArea((1, 1), (3, 3))])
    out = render(ds, state=swapped)
    assert out.shape == (3, 3)
    np.testing.assert_array_equal(out, render(ds, state=upright))


#: Values as a file could hold them (raw bytes, converted when read).
MUTATIONS = [
    {"BitsStored": b"\x00\x00"},
    {"HighBit": b"\xff\xff"},
    {"WindowCenter": b"abc ", "WindowWidth": b"0 "},
    {"RescaleSlope": b"x "},
    {"RescaleIntercept": b"1e999 "},
    {"NumberOfFrames": b"1A"},
    {"PlanarConfiguration": b"\x05\x00"},
    {"PixelData": b"\x00\x00"},
    {"PhotometricInterpretation": b""},
    {"PhotometricInterpretation": b"\xff\xfe"},
    {"SamplesPerPixel": None},
    {"BitsAllocated": None},
    {"Rows": b"\x01"},
    {"VOILUTFunction": b"BOGUS "},
    {"PixelSpacing": b"a\\b "},
    {"SOPInstanceUID": b"\x00"},
]


def _raw(ds: Dataset, keyword: str, value: bytes) -> None:
    tag = pydicom.datadict.tag_for_keyword(keyword)
    vr = pydicom.datadict.dictionary_VR(tag)
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[str(m) for m in MUTATIONS])
def test_mutated_real_file_renders_or_raises_render_error(mutation) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in mutation.items():
        if value is None:
            del ds[keyword]
        else:
            _raw(ds, keyword, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = render(ds)
        except RenderError as exc:
            assert str(exc)
        else:
            assert out.dtype == np.uint8 and out.shape == (128, 128)
