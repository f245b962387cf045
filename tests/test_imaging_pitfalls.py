"""The pitfalls of issue 5, one test each, with values computed by hand.

Hand-made images (tests/synthetic.py) where no real file has the case; real
files where one has it.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from jivex_client.viewer.loader import FrameRef, load_frame
from jivex_core.imaging.color import ybr_to_rgb
from jivex_core.imaging.render import (
    SPACING_FUNCTIONAL_GROUPS,
    SPACING_IMAGER,
    SPACING_PIXEL,
    Window,
    prepare_frame,
    render,
)
from tests.helpers import SHARED_DATA, dcmtk
from tests.synthetic import image, save


def linear(x: float, c: float, w: float) -> int:
    """PS3.3 C.11.2.1.2.1 as the standard writes it, y in 0..255, rounded."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0
    if x > c - 0.5 + (w - 1) / 2:
        return 255
    return int(np.floor(((x - (c - 0.5)) / (w - 1) + 0.5) * 255 + 0.5))


# -- MONOCHROME1 ----------------------------------------------------------


def test_monochrome1_is_inverted_after_the_window_and_on_first_display(
    tmp_path: Path,
) -> None:
    ramp = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    ds = image(ramp, photometric="MONOCHROME1", WindowCenter=200, WindowWidth=101)
    out = render(ds)  # no window given: what the viewer shows first
    for x in (0, 149, 150, 175, 200, 225, 250, 251, 999):
        assert out.flat[x] == 255 - linear(x, 200, 101), x
    # Inverting the values before the window would have put the ramp at
    # 999 - x, i.e. around x = 799: there the image must be black.
    assert out.flat[799] == 0
    # The viewer's worker renders the first image the same way.
    path = save(ds, tmp_path / "mono1.dcm")
    loaded = load_frame(FrameRef(str(path), 0, str(ds.SOPInstanceUID)))
    assert loaded.image is not None
    np.testing.assert_array_equal(loaded.image, out)
    # A window the reader drags is inverted the same way.
    dragged = prepare_frame(ds).render(Window(500, 11))
    assert dragged.flat[494] == 255 and dragged.flat[506] == 0


def test_monochrome1_real_file_shows_low_values_white() -> None:
    ds = pydicom.dcmread(SHARED_DATA / "dwv/gdcm-CR-MONO1-10-chest.dcm")
    frame = prepare_frame(ds)
    assert frame.inverse
    out = frame.render()
    lowest = out[frame.values == frame.values.min()]
    highest = out[frame.values == frame.values.max()]
    assert lowest.min() == 255 and highest.max() < 30
    window = frame.default_window
    assert window is not None
    x = float(frame.values.max())
    assert highest.max() == 255 - linear(x, window.center, window.width)


@pytest.mark.parametrize(
    ("photometric", "shape", "inverted"),
    [
        ("MONOCHROME1", None, True),
        ("MONOCHROME1", "INVERSE", True),  # DX: INVERSE says MONOCHROME1
        ("MONOCHROME1", "IDENTITY", False),
        ("MONOCHROME2", None, False),
        ("MONOCHROME2", "IDENTITY", False),
        ("MONOCHROME2", "INVERSE", True),
    ],
)
def test_presentation_lut_shape_of_the_image_is_one_inversion_not_two(
    tmp_path: Path, photometric: str, shape: str | None, inverted: bool
) -> None:
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ds = image(
        ramp,
        photometric=photometric,
        bits_allocated=8,
        WindowCenter=128,
        WindowWidth=256,  # y = x
    )
    if shape is not None:
        ds.PresentationLUTShape = shape
    out = render(ds)
    np.testing.assert_array_equal(out, 255 - ramp if inverted else ramp)
    # DCMTK reads the shape the same way.
    path = save(ds, tmp_path / "shape.dcm")
    png = tmp_path / "shape.png"
    subprocess.run(
        [dcmtk("dcm2pnm"), "+on", "+Wi", "1", str(path), str(png)],
        check=True,
        capture_output=True,
    )
    theirs = np.asarray(Image.open(png)).astype(int)
    assert np.abs(theirs - out.astype(int)).max() <= 1


# -- signed pixels --------------------------------------------------------


def test_signed_pixels_are_read_signed_before_min_max_rescale_and_window() -> None:
    values = np.array([[-2048, -1000, -1, 0], [1, 500, 1000, 2047]], dtype=np.int16)
    # 12 bits stored in 16 with rubbish in the 4 unused high bits, which must
    # not be taken for the sign.
    words = (values.astype(np.int32) & 0x0FFF) | 0x5000
    ds = image(
        words.astype(np.uint16),
        bits_stored=12,
        high_bit=11,
        signed=True,
        RescaleSlope=2,
        RescaleIntercept=-100,
        Modality="CT",
    )
    frame = prepare_frame(ds)
    np.testing.assert_array_equal(frame.values, values * 2.0 - 100)
    assert frame.units == "HU"
    # Min/max window over the signed values: -2048 is black, 2047 white,
    # and -1 darker than 0 (read unsigned, -1 would be 4095: white).
    out = frame.render()
    assert out[0, 0] == 0 and out[1, 3] == 255
    assert out[0, 2] < out[0, 3]
    window = Window(-200, 1000)
    out = frame.render(window)
    for r, c in np.ndindex(values.shape):
        assert out[r, c] == linear(values[r, c] * 2 - 100, -200, 1000)


def test_signed_real_file() -> None:
    ds = pydicom.dcmread(SHARED_DATA / "dcm4che/test16signed.dcm")
    frame = prepare_frame(ds)
    raw = np.frombuffer(ds.PixelData, dtype="<i2").reshape(ds.Rows, ds.Columns)
    assert raw.min() < 0
    np.testing.assert_array_equal(frame.values, raw.astype(np.float32))


# -- JPEG baseline YBR_FULL_422 -------------------------------------------


@pytest.mark.parametrize(
    "name", ["SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm"]
)
def test_jpeg_baseline_ybr_full_422_is_converted_once(name: str) -> None:
    ds = pydicom.dcmread(get_testdata_file(name))
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    out = render(ds).astype(int)
    original = render(pydicom.dcmread(get_testdata_file("SC_rgb.dcm"))).astype(int)
    # Bars of known colours (red, pink, green, ... white): within JPEG's loss.
    for row in range(5, 100, 10):
        assert np.abs(out[row, 50] - original[row, 50]).max() <= 6, row
    # A second conversion would have turned pure red into something else.
    twice = ybr_to_rgb(out.astype(np.uint8), "YBR_FULL").astype(int)
    assert np.abs(twice[5, 50] - original[5, 50]).max() > 60


# -- palette colour -------------------------------------------------------


def _palette(ds: Dataset, red, green, blue, descriptor) -> None:
    for name, table in (("Red", red), ("Green", green), ("Blue", blue)):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", descriptor)
        setattr(
            ds,
            f"{name}PaletteColorLookupTableData",
            np.asarray(table, dtype="<u2").tobytes(),
        )


def test_palette_descriptor_zero_means_65536_entries() -> None:
    stored = np.array([[0, 1, 255, 256], [32768, 40000, 65534, 65535]], np.uint16)
    ds = image(stored, photometric="PALETTE COLOR")
    entries = np.arange(65536, dtype=np.uint32)
    _palette(ds, entries, 65535 - entries, np.full(65536, 0x8000), [0, 0, 16])
    out = render(ds)
    assert out.shape == (2, 4, 3)
    for (r, c), value in np.ndenumerate(stored):
        # 16-bit entries shown with their high byte.
        assert out[r, c].tolist() == [value >> 8, (65535 - value) >> 8, 128], value


def test_palette_first_mapped_value_and_clamping() -> None:
    stored = np.array([[0, 10, 11, 12, 200]], np.uint8)
    ds = image(stored, photometric="PALETTE COLOR", bits_allocated=8)
    table = [0, 100, 200]
    _palette(ds, table, table, table, [3, 10, 16])
    ds.RedPaletteColorLookupTableData = np.array([0, 25600, 51200], "<u2").tobytes()
    out = render(ds)[0, :, 0]
    # Below the first mapped value: first entry; above the last: last one.
    assert out.tolist() == [0, 0, 100, 200, 200]


def test_segmented_palette_is_expanded() -> None:
    stored = np.arange(8, dtype=np.uint8).reshape(1, 8)
    ds = image(stored, photometric="PALETTE COLOR", bits_allocated=8)
    # Discrete 0x0000, 0x1000; linear to 0x5000 over 3 entries; then an
    # indirect segment copying 2 segments from byte offset 0 (the discrete
    # and linear ones; the linear one continues from the last value).
    segmented = [0, 2, 0x0000, 0x1000, 1, 3, 0x5000, 2, 2, 0, 0]
    for name in ("Red", "Green", "Blue"):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [8, 0, 16])
        setattr(
            ds,
            f"Segmented{name}PaletteColorLookupTableData",
            np.asarray(segmented, "<u2").tobytes(),
        )
    out = render(ds)[0, :, 0]
    # Linear from 0x1000 to 0x5000 in 3 steps: 0x2555, 0x3AAB, 0x5000; the
    # copy repeats the first two segments; 8 entries are kept.
    expected = [0x0000, 0x1000, 0x2555, 0x3AAB, 0x5000, 0x0000, 0x1000, 0x2555]
    assert out.tolist() == [v >> 8 for v in expected]


def test_segmented_palette_of_a_real_file_matches_pydicom() -> None:
    ds = pydicom.dcmread(get_testdata_file("gdcm-US-ALOKA-16.dcm"))
    assert "SegmentedRedPaletteColorLookupTableData" in ds
    ours = render(ds).astype(int)
    theirs = pydicom.pixels.apply_color_lut(ds.pixel_array, ds).astype(int) >> 8
    assert np.abs(ours - theirs).max() <= 1


# -- overlays in high bits ------------------------------------------------


def _embedded_overlay_image() -> tuple[Dataset, np.ndarray, np.ndarray]:
    grey = (np.arange(64 * 64, dtype=np.uint16) % 4096).reshape(64, 64)
    square = np.zeros((64, 64), dtype=bool)
    square[10:30, 20:40] = True
    words = grey | (square.astype(np.uint16) << 12)
    ds = image(words, bits_stored=12, high_bit=11, WindowCenter=2048, WindowWidth=4096)
    ds.add_new((0x6000, 0x0010), "US", 64)
    ds.add_new((0x6000, 0x0011), "US", 64)
    ds.add_new((0x6000, 0x0040), "CS", "G")
    ds.add_new((0x6000, 0x0050), "SS", [1, 1])
    ds.add_new((0x6000, 0x0100), "US", 16)
    ds.add_new((0x6000, 0x0102), "US", 12)
    ds.add_new((0x6000, 0x1500), "LO", "MARKS")
    return ds, grey, square


def test_overlay_in_high_bits_is_extracted_and_masked(tmp_path: Path) -> None:
    ds, grey, square = _embedded_overlay_image()
    frame = prepare_frame(ds)
    np.testing.assert_array_equal(frame.values, grey)  # bit 12 is gone
    [overlay] = frame.overlays
    assert overlay.embedded and overlay.label == "MARKS" and overlay.origin == (1, 1)
    np.testing.assert_array_equal(overlay.bitmap, square)
    burnt = render(ds)
    assert (burnt[square] == 255).all()
    np.testing.assert_array_equal(burnt[~square], frame.render()[~square])
    # DCMTK agrees, with and without its overlay display.
    path = save(ds, tmp_path / "overlay.dcm")
    for options, ours in ((["-O"], frame.render()), ([], burnt)):
        out = tmp_path / "dcmtk.png"
        subprocess.run(
            [dcmtk("dcm2pnm"), "+on", "+Wi", "1", *options, str(path), str(out)],
            check=True,
            capture_output=True,
        )
        theirs = np.asarray(Image.open(out)).astype(int)
        assert np.abs(theirs - ours.astype(int)).max() <= 1, options


def test_overlay_data_multi_frame_planes() -> None:
    frames = np.zeros((3, 8, 8), dtype=np.uint8)
    ds = image(frames.reshape(24, 8), rows=8, columns=8, bits_allocated=8)
    ds.NumberOfFrames = 3
    planes = np.zeros((2, 4, 4), dtype=bool)
    planes[0, 0, 0] = True  # first plane: top left
    planes[1, 3, 3] = True  # second plane: bottom right
    bits = np.packbits(planes.reshape(-1).astype(np.uint8), bitorder="little")
    ds.add_new((0x6002, 0x0010), "US", 4)
    ds.add_new((0x6002, 0x0011), "US", 4)
    ds.add_new((0x6002, 0x0040), "CS", "G")
    ds.add_new((0x6002, 0x0050), "SS", [3, 5])
    ds.add_new((0x6002, 0x0100), "US", 1)
    ds.add_new((0x6002, 0x0102), "US", 0)
    ds.add_new((0x6002, 0x0015), "IS", 2)
    ds.add_new((0x6002, 0x0051), "US", 2)  # planes for frames 2 and 3
    ds.add_new((0x6002, 0x3000), "OW", bits.tobytes())
    assert prepare_frame(ds, 0).overlays == []
    second = prepare_frame(ds, 1).overlays[0]
    third = prepare_frame(ds, 2).overlays[0]
    np.testing.assert_array_equal(second.bitmap, planes[0])
    np.testing.assert_array_equal(third.bitmap, planes[1])
    mask = third.mask(8, 8)
    assert mask[5, 7] and mask.sum() == 1  # origin row 3, column 5 (1-based)


# -- enhanced multi-frame -------------------------------------------------


def _item(**attributes) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _enhanced() -> Dataset:
    stored = np.stack([np.full((4, 4), 100 * (i + 1), np.uint16) for i in range(3)])
    stored[:, 0, 0] = 0
    ds = image(
        stored.reshape(12, 4),
        rows=4,
        columns=4,
        sop_class="1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
        Modality="CT",
        NumberOfFrames=3,
        # Top-level values an enhanced object should not have; they must lose.
        RescaleSlope=1,
        RescaleIntercept=0,
        WindowCenter=9999,
        WindowWidth=2,
    )
    shared = _item(
        PixelMeasuresSequence=Sequence([_item(PixelSpacing=[0.5, 0.25])]),
        PixelValueTransformationSequence=Sequence(
            [_item(RescaleSlope=1, RescaleIntercept=-1000, RescaleType="HU")]
        ),
    )
    per_frame = []
    for number, (slope, intercept, center, width) in enumerate(
        [(1, -1024, 40, 400), (2, -1024, -600, 1500), (None, None, 300, 100)]
    ):
        groups = {
            "FrameVOILUTSequence": Sequence(
                [
                    _item(
                        WindowCenter=[center, 0],
                        WindowWidth=[width, 10],
                        WindowCenterWidthExplanation=[f"W{number}", "SECOND"],
                    )
                ]
            )
        }
        if slope is not None:
            groups["PixelValueTransformationSequence"] = Sequence(
                [_item(RescaleSlope=slope, RescaleIntercept=intercept)]
            )
        per_frame.append(_item(**groups))
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    return ds


def test_enhanced_multiframe_takes_window_and_rescale_per_frame() -> None:
    ds = _enhanced()
    expected = [
        (1, -1024, Window(40, 400)),
        (2, -1024, Window(-600, 1500)),
        (1, -1000, Window(300, 100)),  # rescale from the shared groups
    ]
    for index, (slope, intercept, window) in enumerate(expected):
        frame = prepare_frame(ds, index)
        stored = 100 * (index + 1)
        assert frame.values[1, 1] == stored * slope + intercept
        assert frame.values[0, 0] == intercept
        assert frame.default_window == window
        assert [w.label for w in frame.windows] == [f"W{index}", "SECOND"]
        assert frame.windows[1].window == Window(0, 10)
        assert frame.pixel_spacing == (0.5, 0.25)
        assert frame.spacing_source == SPACING_FUNCTIONAL_GROUPS
        assert frame.units == "HU"
        out = frame.render()
        value = stored * slope + intercept
        assert out[1, 1] == linear(value, window.center, window.width)


def test_pixel_spacing_sources() -> None:
    plain = image(np.zeros((2, 2), np.uint16), PixelSpacing=[0.7, 0.8])
    assert prepare_frame(plain).pixel_spacing == (0.7, 0.8)
    assert prepare_frame(plain).spacing_source == SPACING_PIXEL
    projection = image(np.zeros((2, 2), np.uint16), ImagerPixelSpacing=[0.1, 0.1])
    assert prepare_frame(projection).spacing_source == SPACING_IMAGER
    nothing = prepare_frame(image(np.zeros((2, 2), np.uint16)))
    assert nothing.pixel_spacing is None and nothing.spacing_source is None


# -- pixel data too short or too long -------------------------------------


def test_pixel_data_one_byte_short_still_displays() -> None:
    # 3 x 3 8-bit: 9 bytes, written without its pad and one byte short.
    ds = image(None, data=bytes(range(10, 18)), rows=3, columns=3, bits_allocated=8)
    frame = prepare_frame(ds)
    assert frame.values.ravel().tolist() == [*range(10, 18), 0]
    # Issue 5: it "still displays", as any image does: no warning, no mask.
    assert frame.warnings == [] and not frame.incomplete
    # 16-bit: the last byte of the last pixel is missing.
    data = np.array([1, 2, 3, 0x0104], "<u2").tobytes()[:-1]
    short16 = prepare_frame(image(None, data=data, rows=2, columns=2))
    assert short16.values.ravel().tolist() == [1, 2, 3, 4]
    assert short16.warnings == [] and not short16.incomplete


def test_pixel_data_longer_than_needed_still_displays() -> None:
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    exact = render(image(pixels))
    longer = image(None, data=pixels.tobytes() + bytes(101), rows=3, columns=4)
    np.testing.assert_array_equal(render(longer), exact)
    assert prepare_frame(longer).warnings == []


def test_truncated_real_file_shows_what_it_has() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("MR_truncated.dcm"))
    frame = prepare_frame(ds)
    assert frame.values.shape == (64, 64)
    # 62 bytes missing: more than a pad byte, so said, and shown black.
    assert frame.warnings == [
        "Pixel Data holds 8130 of 8192 bytes: the rest shows black"
    ]
    reference = prepare_frame(pydicom.dcmread(get_testdata_file("MR_small.dcm")))
    np.testing.assert_array_equal(frame.values[:63], reference.values[:63])
    assert frame.missing is not None
    assert np.flatnonzero(frame.missing.ravel()).tolist() == list(range(4065, 4096))
    shown = frame.render()
    assert not shown[63, 33:].any()
