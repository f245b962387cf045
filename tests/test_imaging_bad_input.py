"""Bad input: a RenderError whose message names what is wrong, never another
exception, from both public entries (prepare_frame and render)."""

from __future__ import annotations

import math
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
from jivex_core.imaging.render import RenderError, Window, prepare_frame, render
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
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + bytes(100) + b"\xff\xd9"])
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


# -- numbers the pipeline cannot use: a warning and a sane fallback ----------


def _ct(**attributes) -> Dataset:
    pixels = np.array([[0, 100], [1000, 2000]], dtype=np.int16)
    return image(pixels, signed=True, Modality="CT", **attributes)


@pytest.mark.parametrize(
    ("slope", "warning"),
    [
        ("0", "Rescale Slope (0028,1053) is 0: read as 1"),
        ("nan", "Rescale Slope (0028,1053) is nan: read as 1"),
        ("inf", "Rescale Slope (0028,1053) is inf: read as 1"),
    ],
)
def test_a_rescale_slope_of_zero_or_not_a_number_reads_as_one(slope, warning) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _ct(RescaleSlope=slope, RescaleIntercept="-1024")
    frame = prepare_frame(ds)
    assert frame.values.ravel().tolist() == [-1024, -924, -24, 976]
    [said] = frame.warnings
    assert said.startswith(warning)
    # A good slope, or none, says nothing.
    assert prepare_frame(_ct(RescaleSlope="2", RescaleIntercept="0")).warnings == []
    assert prepare_frame(_ct()).warnings == []


def test_a_rescale_intercept_that_is_not_a_number_reads_as_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _ct(RescaleSlope="1", RescaleIntercept="nan")
    frame = prepare_frame(ds)
    assert frame.values.ravel().tolist() == [0, 100, 1000, 2000]
    assert frame.warnings == ["Rescale Intercept (0028,1052) is nan: read as 0"]


@pytest.mark.parametrize(
    ("centers", "widths", "warning"),
    [
        (
            ["-5", "40"],
            ["-100", "400"],
            "Window 1 of the file (center -5, width -100) is ignored: its width "
            "is below 1",
        ),
        (
            ["nan", "40"],
            ["400", "400"],
            "Window 1 of the file (center nan, width 400) is ignored: its center "
            "is not a finite number",
        ),
        (
            ["40", "40"],
            ["1e309", "400"],
            "Window 1 of the file (center 40, width 1e309) is ignored: its width "
            "is not a finite number",
        ),
        (
            ["1e30", "40"],
            ["10", "400"],
            "Window 1 of the file (center 1e+30, width 10) is ignored: it shows "
            "every value the image can hold as one grey",
        ),
        (
            ["0", "40"],
            ["1e30", "400"],
            "Window 1 of the file (center 0, width 1e+30) is ignored: it shows "
            "every value the image can hold as one grey",
        ),
    ],
    ids=["negative width", "nan center", "infinite width", "far center", "huge width"],
)
def test_a_file_window_that_cannot_work_is_ignored_with_a_warning(
    centers, widths, warning
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _ct(WindowCenter=centers, WindowWidth=widths)
        frame = prepare_frame(ds)
    assert frame.warnings == [warning]
    # The next window of the file is the one shown.
    assert [p.window for p in frame.windows] == [Window(40, 400)]
    assert frame.default_window == Window(40, 400)
    np.testing.assert_array_equal(render(ds), render(_ct(), 0, Window(40, 400)))


def test_without_a_usable_file_window_the_value_range_is_shown() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = prepare_frame(_ct(WindowCenter="1e30", WindowWidth="1e30"))
    assert frame.windows == [] and len(frame.warnings) == 1
    assert frame.default_window == Window(1000.5, 2001)


def test_a_window_beyond_this_frames_values_but_not_the_images_is_kept() -> None:
    # All values are below 2001, but the 16 bits could hold 3000: a window
    # there is a real (if dark) choice, not broken numbers.
    frame = prepare_frame(_ct(WindowCenter="3000", WindowWidth="10"))
    assert frame.warnings == [] and frame.default_window == Window(3000, 10)
    assert not render(_ct(WindowCenter="3000", WindowWidth="10")).any()


def test_window_refuses_numbers_that_are_not_finite() -> None:
    for center, width in ((float("nan"), 400), (float("inf"), 400), (40, math.inf)):
        with pytest.raises(ValueError, match="is not a finite number"):
            Window(center, width)
