"""Grayscale Softcopy Presentation States: the presentation model as DICOM.

:func:`build_presentation_state` writes a
:class:`~jivex_core.imaging.presentation.PresentationState` as the GSPS that
section 7.1.1.1 of the conformance statement describes (tables 47 and
49-62, PS3.3 A.33.1); :func:`presentation_from_dataset` reads any GSPS back
into the model, those of other systems included.

A presentation state replaces the grayscale pipeline of the images it
references (PS3.4 N.2): its Modality LUT, VOI LUT and Presentation LUT are
used instead of the images' own, and a transformation it leaves out is the
identity. So a state that keeps "the image's own" modality LUT or window
(None in the model) is written with the images' own values, taken from the
source images; :func:`complete_state` says what the file will hold.

Reading is tolerant where the standard leaves room and strict where it does
not: optional modules may be absent; content this viewer cannot show
(bitmap shutters, overlay activation, graphics in units it cannot map to the
image) is dropped with a warning; a required attribute that is missing or
malformed raises ValueError naming it.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from jivex_core.imaging.created import (
    MANUFACTURER,
    by_series,
    check_text,
    copy_patient_study,
    ds_value,
    image_references,
    read_frames,
    read_int_list,
    resolve_refs,
    same_study,
    set_character_set,
    sources_by_uid,
    stamp,
)
from jivex_core.imaging.presentation import (
    Annotation,
    DisplayedArea,
    Graphic,
    GraphicLayer,
    GraphicTypeValues,
    ImageRef,
    LookupTable,
    ModalityTransform,
    Point,
    PresentationSizeModeValues,
    PresentationState,
    Shutter,
    ShutterShapeValues,
    TextLabel,
    VoiSetting,
    applies,
    displayed_corners,
)
from jivex_core.imaging.render import MONOCHROME, Window, file_window
from jivex_core.uids import new_uid

logger = logging.getLogger(__name__)

#: Grayscale Softcopy Presentation State Storage (PS3.4 B.5).
GSPS_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.11.1")

#: Series Number of the first series of presentation states we create in a
#: study: high, so that it sorts after the acquired series and does not
#: collide with their numbers.
PR_SERIES_NUMBER = 9001

_CS = re.compile(r"^[A-Z0-9_]([A-Z0-9 _]*[A-Z0-9_])?$")
_ROTATIONS = (0, 90, 180, 270)
_SHAPES = ("IDENTITY", "INVERSE")
_JUSTIFICATIONS = ("LEFT", "RIGHT", "CENTER")
_POINTS = {
    GraphicTypeValues.POINT: (1, 1),
    GraphicTypeValues.POLYLINE: (2, None),
    GraphicTypeValues.INTERPOLATED: (2, None),
    GraphicTypeValues.CIRCLE: (2, 2),
    GraphicTypeValues.ELLIPSE: (4, 4),
}


# -- Colours --------------------------------------------------------------
#
# Graphic layers carry their recommended colour as CIELab in the encoding of
# PS3.3 C.10.7.1.1 (ICC PCS, D50 white): L* 0..100 and a*, b* -128..127, each
# mapped linearly onto 0..65535. The screen's colours are sRGB.

#: sRGB (linear) to CIE XYZ under D50, Bradford-adapted from D65.
_RGB_TO_XYZ = np.array(
    [
        [0.4360747, 0.3850649, 0.1430804],
        [0.2225045, 0.7168786, 0.0606169],
        [0.0139322, 0.0971045, 0.7141733],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
#: The D50 white point as the matrix gives it, so that white is a* = b* = 0.
_D50 = _RGB_TO_XYZ.sum(axis=1)
_EPSILON, _KAPPA = 216 / 24389, 24389 / 27


def rgb_to_cielab(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """sRGB (8 bits per channel) as DICOM CIELab values (PS3.3 C.10.7.1.1)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = _RGB_TO_XYZ @ linear / _D50
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    lab = (116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2]))
    scaled = (lab[0] * 65535 / 100, (lab[1] + 128) * 65535 / 255)
    scaled += ((lab[2] + 128) * 65535 / 255,)
    return tuple(int(np.clip(round(v), 0, 65535)) for v in scaled)  # type: ignore[return-value]


def cielab_to_rgb(values: Sequence[int]) -> tuple[int, int, int]:
    """DICOM CIELab values as sRGB, 8 bits per channel (out of gamut clipped)."""
    lightness = values[0] * 100 / 65535
    a = values[1] * 255 / 65535 - 128
    b = values[2] * 255 / 65535 - 128
    fy = (lightness + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    xyz = np.where(f**3 > _EPSILON, f**3, (116 * f - 16) / _KAPPA)
    if lightness <= _KAPPA * _EPSILON:
        xyz[1] = lightness / _KAPPA
    linear = np.clip(_XYZ_TO_RGB @ (xyz * _D50), 0.0, 1.0)
    c = np.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055
    )
    return tuple(int(np.clip(round(v * 255), 0, 255)) for v in c)  # type: ignore[return-value]


# -- Building -------------------------------------------------------------


def content_label(text: str) -> str:
    """A valid Content Label (0070,0080) made from free text.

    Content Label is a Code String of at most 16 characters: upper case
    letters, digits, space and underscore (PS3.5 6.2). Other characters
    become underscores; an empty result is ``UNNAMED``.
    """
    label = re.sub(r"[^A-Z0-9 _]", "_", text.upper()).strip()[:16].strip()
    return label or "UNNAMED"


def _check_cs(value: str, what: str) -> None:
    if len(value) > 16 or not _CS.match(value):
        raise ValueError(
            f"{what} '{value}' is not a Code String: 1 to 16 upper case letters, "
            "digits, spaces and underscores, without leading or trailing spaces"
        )


def _check_grayscale(ref: ImageRef, source: Dataset) -> None:
    photometric = str(source.get("PhotometricInterpretation", "") or "").strip()
    samples = source.get("SamplesPerPixel", 1)
    if photometric not in MONOCHROME or (samples not in (None, "") and samples != 1):
        kind = photometric or "without a Photometric Interpretation"
        raise ValueError(
            f"image '{ref.SOPInstanceUID}' is {kind}: a Grayscale Softcopy "
            "Presentation State applies to MONOCHROME1 or MONOCHROME2 images only"
        )


def _subset(
    refs: tuple[ImageRef, ...],
    images: list[ImageRef],
    what: str,
) -> tuple[ImageRef, ...]:
    """*refs* checked against the state's images, with their classes filled."""
    known = {ref.SOPInstanceUID: ref for ref in images}
    out = []
    for ref in refs:
        main = known.get(ref.SOPInstanceUID)
        if main is None:
            raise ValueError(
                f"{what} names image '{ref.SOPInstanceUID}', which the state "
                "does not reference"
            )
        bad = [f for f in ref.frames if main.frames and f not in main.frames]
        if bad:
            raise ValueError(
                f"{what} names frame {bad[0]} of image '{ref.SOPInstanceUID}', "
                "which the state does not reference"
            )
        out.append(
            ImageRef(main.SOPClassUID, main.SOPInstanceUID, main.SeriesInstanceUID)
            if not ref.frames
            else ImageRef(
                main.SOPClassUID,
                main.SOPInstanceUID,
                main.SeriesInstanceUID,
                ref.frames,
            )
        )
    return tuple(out)


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _frame_items(ds: Dataset, keyword: str) -> list[Dataset | None]:
    """Per frame, the item of a functional group (per-frame, else shared).

    Enhanced multi-frame objects keep their rescale and window in the
    functional groups (PS3.3 C.7.6.16); [] when the object has none, one
    item when only the shared group has it.
    """
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    shared_item = None if shared is None else _first_item(shared, keyword)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return [] if shared_item is None else [shared_item]
    out: list[Dataset | None] = []
    for frame in per_frame:
        item = _first_item(frame, keyword)
        out.append(shared_item if item is None else item)
    return out


def _rescale(ds: Dataset) -> ModalityTransform | None:
    """The modality LUT of one image (PS3.3 C.11.1), None when it has none.

    Raises
    ------
    ValueError
        When the frames of a multi-frame image are rescaled differently: a
        presentation state has one Modality LUT for all its images.
    """
    lut_item = _first_item(ds, "ModalityLUTSequence")
    if lut_item is not None:
        return ModalityTransform(
            type=str(lut_item.get("ModalityLUTType", "") or "US"),
            lut=_read_lut(lut_item, "Modality LUT Sequence of the image"),
        )
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        holders: list[Dataset | None] = [ds]
    else:
        holders = _frame_items(ds, "PixelValueTransformationSequence")
    default_type = "HU" if str(ds.get("Modality", "")) == "CT" else "US"
    found = set()
    for holder in holders:
        if holder is None or not (
            "RescaleSlope" in holder or "RescaleIntercept" in holder
        ):
            found.add(None)
            continue
        found.add(
            ModalityTransform(
                float(holder.get("RescaleSlope", 1) or 1),
                float(holder.get("RescaleIntercept", 0) or 0),
                str(holder.get("RescaleType", "") or default_type),
            )
        )
    if len(found) > 1:
        raise ValueError(
            f"the frames of image '{ds.get('SOPInstanceUID', '')}' are rescaled "
            "differently; a presentation state carries one modality LUT"
        )
    return found.pop() if found else None


def _voi_key(holder: Dataset, window: Window) -> tuple[Any, ...]:
    return (
        window,
        str(holder.get("VOILUTFunction", "") or "LINEAR").upper(),
        _text(holder, "WindowCenterWidthExplanation"),
        None,
    )


def _image_voi(ref: ImageRef, ds: Dataset) -> list[tuple[ImageRef, tuple[Any, ...]]]:
    """The image's own first window or VOI LUT, for *ref* or its frames.

    Returns (reference, (window, function, explanation, lut)) pairs: one for
    the image, or one per group of frames with the same window when an
    enhanced multi-frame image windows its frames differently.
    """
    window = file_window(ds)
    if window is not None:
        return [(ref, _voi_key(ds, window))]
    items = _frame_items(ds, "FrameVOILUTSequence")
    if len(items) == 1 and items[0] is not None:
        window = file_window(items[0])
        return [] if window is None else [(ref, _voi_key(items[0], window))]
    if items:
        groups: dict[tuple[Any, ...], list[int]] = {}
        for frame in ref.frames or range(1, len(items) + 1):
            item = items[frame - 1] if frame <= len(items) else None
            window = None if item is None else file_window(item)
            if item is not None and window is not None:
                groups.setdefault(_voi_key(item, window), []).append(frame)
        if len(groups) == 1 and sum(map(len, groups.values())) == (
            len(ref.frames) or len(items)
        ):
            return [(ref, next(iter(groups)))]
        return [
            (
                ImageRef(
                    ref.SOPClassUID,
                    ref.SOPInstanceUID,
                    ref.SeriesInstanceUID,
                    tuple(frames),
                ),
                key,
            )
            for key, frames in groups.items()
        ]
    lut_item = _first_item(ds, "VOILUTSequence")
    if lut_item is not None:
        lut = _read_lut(lut_item, "VOI LUT of the image")
        return [(ref, (None, "LINEAR", "", lut))]
    return []


def _aspect_ratio(ds: Dataset) -> tuple[int, int]:
    ratio = ds.get("PixelAspectRatio")
    if ratio is not None and len(ratio) == 2:
        return int(ratio[0]), int(ratio[1])
    spacing = _pixel_spacing(ds)
    if spacing is not None and spacing[0] > 0 and spacing[1] > 0:
        fraction = Fraction(spacing[0] / spacing[1]).limit_denominator(1000)
        return fraction.numerator, fraction.denominator
    return 1, 1


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            return float(value[0]), float(value[1])
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    measures = None if shared is None else _first_item(shared, "PixelMeasuresSequence")
    if measures is not None and measures.get("PixelSpacing"):
        value = measures.PixelSpacing
        return float(value[0]), float(value[1])
    return None


def _group(
    settings: list[tuple[ImageRef, Any]],
    all_images: list[ImageRef],
    explicit_before: bool,
) -> list[tuple[tuple[ImageRef, ...], Any]]:
    """Group per-image defaults that are equal; () when one covers all."""
    groups: dict[Any, list[ImageRef]] = {}
    for ref, value in settings:
        groups.setdefault(value, []).append(ref)
    if len(groups) == 1 and not explicit_before and len(settings) == len(all_images):
        return [((), next(iter(groups)))]
    return [(tuple(refs), value) for value, refs in groups.items()]


def _covered(items: Iterable[tuple[ImageRef, ...]], ref: ImageRef) -> bool:
    """Whether an item already applies to (a frame of) the image."""
    frames = ref.frames or (1,)
    return any(
        applies(images, ref.SOPInstanceUID, frame)
        for images in list(items)
        for frame in frames
    )


def _complete_modality(
    state: PresentationState, by_uid: dict[str, Dataset]
) -> ModalityTransform:
    if state.modality is not None:
        return state.modality
    found: dict[ModalityTransform | None, str] = {}
    for ref in state.images:
        found.setdefault(_rescale(by_uid[ref.SOPInstanceUID]), ref.SOPInstanceUID)
    if len(found) > 1:
        uids = list(found.values())
        raise ValueError(
            f"images '{uids[0]}' and '{uids[1]}' have different modality LUTs; "
            "one presentation state carries one (save separate states, or give "
            "the state's modality LUT)"
        )
    return next(iter(found)) or ModalityTransform()


def _complete_voi(
    state: PresentationState, by_uid: dict[str, Dataset]
) -> list[VoiSetting]:
    voi = []
    for item in state.voi:
        images = _subset(item.images, state.images, "a VOI setting")
        if item.window is None and item.lut is None:
            raise ValueError("a VOI setting has neither a window nor a VOI LUT")
        function = item.function.upper() or "LINEAR"
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            raise ValueError(
                f"VOI LUT Function '{item.function}' is not LINEAR, LINEAR_EXACT "
                "or SIGMOID"
            )
        if item.lut is not None:
            _check_lut(item.lut, "the VOI LUT")
        voi.append(
            VoiSetting(images, item.window, function, item.explanation, item.lut)
        )
    own: list[tuple[ImageRef, Any]] = []
    for ref in state.images:
        if _covered((v.images for v in voi), ref):
            continue
        own.extend(_image_voi(ref, by_uid[ref.SOPInstanceUID]))
    for images, (window, function, explanation, lut) in _group(
        own, state.images, bool(voi)
    ):
        voi.append(VoiSetting(images, window, function, explanation, lut))
    return voi


def _complete_areas(
    state: PresentationState, by_uid: dict[str, Dataset]
) -> list[DisplayedArea]:
    areas = []
    for area in state.displayed_areas:
        images = _subset(area.images, state.images, "a displayed area")
        spacing, aspect, magnification = (
            area.pixel_spacing,
            area.aspect_ratio,
            area.magnification,
        )
        targets = [by_uid[r.SOPInstanceUID] for r in (images or state.images)]
        mode = PresentationSizeModeValues(area.size_mode)
        if mode is PresentationSizeModeValues.TRUE_SIZE and spacing is None:
            spacings = {_pixel_spacing(ds) for ds in targets}
            if None in spacings or len(spacings) != 1:
                raise ValueError(
                    "a TRUE SIZE displayed area needs the pixel spacing, and the "
                    "images do not give one (Pixel Spacing or Imager Pixel Spacing)"
                )
            spacing = spacings.pop()
        if mode is PresentationSizeModeValues.MAGNIFY:
            if magnification is None or not magnification > 0:
                raise ValueError(
                    "a MAGNIFY displayed area needs a magnification ratio above 0"
                )
        else:
            magnification = None
        if spacing is not None:
            if not (spacing[0] > 0 and spacing[1] > 0):
                raise ValueError(f"presentation pixel spacing {spacing} is not > 0")
            aspect = None
        elif aspect is None:
            aspect = _aspect_ratio(targets[0])
        elif not (aspect[0] > 0 and aspect[1] > 0):
            raise ValueError(f"presentation pixel aspect ratio {aspect} is not > 0")
        columns = sorted((area.top_left[0], area.bottom_right[0]))
        rows = sorted((area.top_left[1], area.bottom_right[1]))
        expected = displayed_corners(
            columns[0], rows[0], columns[1], rows[1], state.rotation, state.flip
        )
        if (tuple(area.top_left), tuple(area.bottom_right)) != expected:
            raise ValueError(
                f"displayed area {area.top_left}-{area.bottom_right}: with a "
                f"rotation of {state.rotation} and {'a' if state.flip else 'no'} "
                f"flip its corners shown top left and bottom right are "
                f"{expected[0]} and {expected[1]} (PS3.3 C.10.4)"
            )
        top_left, bottom_right = expected
        if columns[0] < 1 or rows[0] < 1:
            top_left, bottom_right, mode, magnification = _inside_image(
                state, area, columns, rows, targets, mode, magnification
            )
        areas.append(
            DisplayedArea(
                top_left,
                bottom_right,
                mode,
                spacing,
                aspect,
                magnification,
                images,
            )
        )
    default: list[tuple[ImageRef, Any]] = []
    for ref in state.images:
        if _covered((a.images for a in areas), ref):
            continue
        ds = by_uid[ref.SOPInstanceUID]
        try:
            size = (int(ds.Columns), int(ds.Rows))
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(
                f"image '{ref.SOPInstanceUID}' has no Rows and Columns"
            ) from exc
        default.append((ref, (size, _aspect_ratio(ds))))
    for images, (size, aspect) in _group(default, state.images, bool(areas)):
        top_left, bottom_right = displayed_corners(
            1, 1, size[0], size[1], state.rotation, state.flip
        )
        areas.append(
            DisplayedArea(top_left, bottom_right, aspect_ratio=aspect, images=images)
        )
    return areas


def _inside_image(
    state: PresentationState,
    area: DisplayedArea,
    columns: list[int],
    rows: list[int],
    targets: list[Dataset],
    mode: PresentationSizeModeValues,
    magnification: float | None,
) -> tuple[tuple[int, int], tuple[int, int], PresentationSizeModeValues, float | None]:
    """The part inside the image of an area reaching left of or above it.

    PS3.3 C.10.4 allows such corners (SL values below 1), but dicom3tools'
    dciodvfy reads them as unsigned and reports the area inconsistent, and
    other readers may too; so no state of ours has one. The corners are
    clamped to the image (1 to Columns and Rows, the largest of the images
    the area applies to). The image scale is kept where the state says it:
    MAGNIFY and TRUE SIZE keep theirs, and a SCALE TO FIT area that comes
    with a magnification (the scale on screen) becomes MAGNIFY at it; a
    SCALE TO FIT area without one stays so, and the view's margin beyond
    the image is dropped (logged).
    """
    try:
        width = max(int(ds.Columns) for ds in targets)
        height = max(int(ds.Rows) for ds in targets)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(
            "a displayed area reaches beyond an image without Rows and Columns"
        ) from exc

    def clamp(value: int, size: int) -> int:
        return min(max(value, 1), size)

    left, right = clamp(columns[0], width), clamp(columns[1], width)
    top, bottom = clamp(rows[0], height), clamp(rows[1], height)
    corners = displayed_corners(left, top, right, bottom, state.rotation, state.flip)
    if mode is PresentationSizeModeValues.SCALE_TO_FIT:
        if area.magnification is not None and area.magnification > 0:
            mode, magnification = PresentationSizeModeValues.MAGNIFY, area.magnification
            logger.info(
                "Displayed area %s-%s reaches beyond the image: written as its "
                "part inside, %s-%s, MAGNIFY %g to keep the scale",
                area.top_left,
                area.bottom_right,
                *corners,
                magnification,
            )
        else:
            logger.info(
                "Displayed area %s-%s reaches beyond the image: written as its "
                "part inside, %s-%s, SCALE TO FIT; the view's margin beyond the "
                "image is dropped",
                area.top_left,
                area.bottom_right,
                *corners,
            )
    else:
        logger.info(
            "Displayed area %s-%s reaches beyond the image: written as its part "
            "inside, %s-%s, %s",
            area.top_left,
            area.bottom_right,
            *corners,
            mode.value,
        )
    return corners[0], corners[1], mode, magnification


def _check_lut(lut: LookupTable, what: str, bits: Sequence[int] = (8, 16)) -> None:
    """A LUT the state gives: PS3.3 C.11.1.1 and C.11.2.1.1 allow 8 or 16
    bits per entry for modality and VOI LUTs, C.11.6.1 10 to 16 for the
    presentation LUT."""
    if not 1 <= len(lut.data) <= 65536:
        raise ValueError(f"{what} has {len(lut.data)} entries; 1 to 65536 allowed")
    if lut.bits == 8 and len(lut.data) % 2:
        raise ValueError(
            f"{what} has an odd number of 8-bit entries ({len(lut.data)}); they "
            "are packed two to a word, so the count must be even"
        )
    if lut.bits not in bits:
        allowed = (
            " or ".join(str(b) for b in bits)
            if len(bits) < 3
            else (f"{bits[0]} to {bits[-1]}")
        )
        raise ValueError(f"{what} has {lut.bits} bits per entry; {allowed} allowed")
    if min(lut.data) < 0 or max(lut.data) >= 2**lut.bits:
        raise ValueError(f"{what} has entries outside 0..{2**lut.bits - 1}")
    if not -32768 <= lut.first_mapped <= 65535:
        raise ValueError(f"{what} maps its first entry from {lut.first_mapped}")


def _complete_graphic(graphic: Graphic) -> Graphic:
    kind = GraphicTypeValues(graphic.type)
    low, high = _POINTS[kind]
    count = len(graphic.points)
    if count < low or (high is not None and count > high):
        wanted = f"{low}" if low == high else f"at least {low}"
        raise ValueError(f"a {kind.value} graphic needs {wanted} points, not {count}")
    points = tuple((float(x), float(y)) for x, y in graphic.points)
    if not all(np.isfinite(points).flat):
        raise ValueError(f"a {kind.value} graphic has a point that is not finite")
    if (
        graphic.filled
        and kind in (GraphicTypeValues.POLYLINE, GraphicTypeValues.INTERPOLATED)
        and points[0] != points[-1]
    ):
        # Only a closed line can be filled (PS3.3 C.10.5.1.2): close it.
        points = (*points, points[0])
    filled = graphic.filled if Graphic(kind, points).closed else False
    return Graphic(kind, points, filled)


def _complete_text(text: TextLabel) -> TextLabel:
    if text.anchor is None and text.box is None:
        raise ValueError(f"text '{text.text}' has neither an anchor nor a box")
    if not text.text:
        raise ValueError("a text annotation has no text")
    justification = text.justification.upper()
    if justification not in _JUSTIFICATIONS:
        raise ValueError(
            f"text justification '{text.justification}' is not LEFT, RIGHT or CENTER"
        )
    return TextLabel(
        text.text,
        text.anchor,
        text.box,
        text.anchor_visible if text.anchor is not None else True,
        justification if text.box is not None else "LEFT",
    )


def _complete_annotations(
    state: PresentationState,
) -> tuple[list[GraphicLayer], list[Annotation]]:
    names = set()
    for layer in state.layers:
        _check_cs(layer.name, "Graphic Layer")
        if layer.name in names:
            raise ValueError(f"graphic layer '{layer.name}' is defined twice")
        names.add(layer.name)
        if layer.grey is not None and not 0 <= layer.grey <= 65535:
            raise ValueError(
                f"graphic layer '{layer.name}': grey {layer.grey} is not 0..65535"
            )
        if layer.rgb is not None and not all(0 <= c <= 255 for c in layer.rgb):
            raise ValueError(
                f"graphic layer '{layer.name}': colour {layer.rgb} is not 8-bit RGB"
            )
    annotations = []
    for annotation in state.annotations:
        if annotation.layer not in names:
            raise ValueError(
                f"an annotation is drawn in layer '{annotation.layer}', which the "
                "state does not define"
            )
        graphics = [_complete_graphic(g) for g in annotation.graphics]
        texts = [_complete_text(t) for t in annotation.texts]
        if not graphics and not texts:
            continue
        annotations.append(
            Annotation(
                annotation.layer,
                _subset(annotation.images, state.images, "an annotation"),
                graphics,
                texts,
            )
        )
    if not annotations:
        return [], []
    return list(state.layers), annotations


def _complete_shutter(shutter: Shutter | None) -> Shutter | None:
    if shutter is None or not shutter.shapes:
        return None
    if not 0 <= shutter.value <= 65535:
        raise ValueError(f"shutter presentation value {shutter.value} is not 0..65535")
    if shutter.rectangle is not None:
        left, right, upper, lower = shutter.rectangle
        if left > right or upper > lower:
            raise ValueError(
                f"rectangular shutter {shutter.rectangle}: left must not be right "
                "of right, nor upper below lower"
            )
    if shutter.circle is not None and not shutter.circle[1] > 0:
        raise ValueError(f"circular shutter radius {shutter.circle[1]} is not > 0")
    if shutter.polygon is not None and len(shutter.polygon) < 3:
        raise ValueError(
            f"a polygonal shutter needs at least 3 vertices, not {len(shutter.polygon)}"
        )
    return copy.deepcopy(shutter)


def complete_state(
    state: PresentationState, sources: Sequence[Dataset]
) -> PresentationState:
    """The state as its GSPS will hold it: checked, with the images' own
    values where the state keeps them.

    What the state leaves to the images is taken from the source images,
    because a presentation state replaces their grayscale pipeline (PS3.4
    N.2): the modality LUT (one for all images), the first window or VOI LUT
    of each image the state has no VOI setting for, and a displayed area of
    the whole image (Displayed Area is mandatory, PS3.3 C.10.4). A displayed
    area reaching left of or above the image is cut to the image (see
    :func:`_inside_image`: dciodvfy misreads negative corners). Annotations
    without graphics or text are dropped; layers are kept only with
    annotations; a filled open polyline is closed.

    Raises
    ------
    ValueError
        For anything the GSPS could not say; the message names it: no
        images, an image missing from the sources or not grayscale, images
        of several patients, a setting naming an image the state does not
        reference, an undefined layer, a graphic with the wrong number of
        points, a label that is not a Code String.
    """
    if not state.images:
        raise ValueError("a presentation state must reference at least one image")
    by_uid = sources_by_uid(sources)
    images = resolve_refs(state.images, by_uid, "image")
    for ref in images:
        _check_grayscale(ref, by_uid[ref.SOPInstanceUID])
    seen = set()
    for ref in images:
        if ref.SOPInstanceUID in seen:
            raise ValueError(f"image '{ref.SOPInstanceUID}' is referenced twice")
        seen.add(ref.SOPInstanceUID)
    same_study(images, by_uid)
    studies = {
        str(by_uid[r.SOPInstanceUID].get("StudyInstanceUID", "")) for r in images
    }
    if len(studies) > 1:
        raise ValueError(
            "the images belong to different studies; a presentation state applies "
            "to images of its own study"
        )
    _check_cs(state.label, "Content Label")
    check_text(state.description, "Content Description", "LO")
    check_text(state.creator, "Content Creator's Name", "PN")
    for item in state.voi:
        check_text(item.explanation, "a window explanation", "LO")
    for layer in state.layers:
        check_text(layer.description, f"layer '{layer.name}' description", "LO")
    for annotation in state.annotations:
        for text in annotation.texts:
            check_text(text.text, "an annotation text", "ST")
    for lut in (state.presentation_lut, state.modality and state.modality.lut):
        if lut:
            check_text(lut.explanation, "a LUT explanation", "LO")
    if state.modality is not None:
        check_text(state.modality.type, "the modality LUT type", "LO")
    if state.rotation not in _ROTATIONS:
        raise ValueError(f"rotation {state.rotation} is not 0, 90, 180 or 270")
    shape = state.presentation_shape.upper()
    if state.presentation_lut is None and shape not in _SHAPES:
        raise ValueError(
            f"Presentation LUT Shape '{state.presentation_shape}' is not IDENTITY "
            "or INVERSE"
        )
    if state.presentation_lut is not None:
        _check_lut(state.presentation_lut, "the presentation LUT", range(10, 17))
        if state.presentation_lut.first_mapped != 0:
            raise ValueError("the presentation LUT must map its first entry from 0")
    full = PresentationState(images=images)
    full.label = state.label
    full.description = state.description
    full.creator = state.creator
    if state.modality is not None and state.modality.lut is not None:
        _check_lut(state.modality.lut, "the modality LUT")
    # An image's own modality LUT is copied as it is (table 60: Source IMG).
    full.modality = (
        _complete_modality(full, by_uid) if state.modality is None else state.modality
    )
    full.voi = _complete_voi(_with(full, voi=state.voi), by_uid)
    full.presentation_shape = shape if state.presentation_lut is None else "IDENTITY"
    full.presentation_lut = state.presentation_lut
    full.rotation = state.rotation
    full.flip = bool(state.flip)
    full.displayed_areas = _complete_areas(
        _with(full, displayed_areas=state.displayed_areas), by_uid
    )
    full.shutter = _complete_shutter(state.shutter)
    full.layers, full.annotations = _complete_annotations(
        _with(full, layers=state.layers, annotations=state.annotations)
    )
    return full


def _with(state: PresentationState, **changes: Any) -> PresentationState:
    out = copy.copy(state)
    for key, value in changes.items():
        setattr(out, key, value)
    return out


def _lut_item(lut: LookupTable) -> Dataset:
    item = Dataset()
    entries = len(lut.data)
    signed = lut.first_mapped < 0
    first = entries if entries < 65536 else 0
    if signed and first >= 32768:
        first -= 65536  # the same 16 bits; the first value is read unsigned
    item.add_new(
        0x00283002, "SS" if signed else "US", [first, lut.first_mapped, lut.bits]
    )
    if lut.explanation:
        item.LUTExplanation = lut.explanation
    if lut.bits <= 8:
        # Eight-bit entries are packed two to a word, the first in the low
        # byte (PS3.3 C.11.1.1; what dciodvfy expects of OW LUT Data).
        data = np.asarray(lut.data, dtype=np.uint8).tobytes()
        data += b"\x00" * (len(data) % 2)
    else:
        data = np.asarray(lut.data, dtype="<u2").tobytes()
    item.add_new(0x00283006, "OW", data)
    return item


def _write_shutter(ds: Dataset, shutter: Shutter) -> None:
    ds.ShutterShape = [shape.value for shape in shutter.shapes]
    if shutter.rectangle is not None:
        left, right, upper, lower = shutter.rectangle
        ds.ShutterLeftVerticalEdge = left
        ds.ShutterRightVerticalEdge = right
        ds.ShutterUpperHorizontalEdge = upper
        ds.ShutterLowerHorizontalEdge = lower
    if shutter.circle is not None:
        (column, row), radius = shutter.circle
        ds.CenterOfCircularShutter = [row, column]
        ds.RadiusOfCircularShutter = radius
    if shutter.polygon is not None:
        ds.VerticesOfThePolygonalShutter = [
            v for c, r in shutter.polygon for v in (r, c)
        ]
    ds.ShutterPresentationValue = shutter.value


def _area_item(area: DisplayedArea) -> Dataset:
    item = Dataset()
    if area.images:
        item.ReferencedImageSequence = image_references(area.images)
    item.DisplayedAreaTopLeftHandCorner = list(area.top_left)
    item.DisplayedAreaBottomRightHandCorner = list(area.bottom_right)
    item.PresentationSizeMode = PresentationSizeModeValues(area.size_mode).value
    if area.pixel_spacing is not None:
        item.PresentationPixelSpacing = [ds_value(v) for v in area.pixel_spacing]
    elif area.aspect_ratio is not None:
        item.PresentationPixelAspectRatio = list(area.aspect_ratio)
    if area.magnification is not None:
        item.PresentationPixelMagnificationRatio = float(area.magnification)
    return item


def _flat(points: Iterable[Point]) -> list[float]:
    return [float(v) for point in points for v in point]


def _text_item(text: TextLabel) -> Dataset:
    item = Dataset()
    if text.box is not None:
        item.BoundingBoxAnnotationUnits = "PIXEL"
    if text.anchor is not None:
        item.AnchorPointAnnotationUnits = "PIXEL"
    item.UnformattedTextValue = text.text
    if text.box is not None:
        item.BoundingBoxTopLeftHandCorner = _flat([text.box[0]])
        item.BoundingBoxBottomRightHandCorner = _flat([text.box[1]])
        item.BoundingBoxTextHorizontalJustification = text.justification
    if text.anchor is not None:
        item.AnchorPoint = _flat([text.anchor])
        item.AnchorPointVisibility = "Y" if text.anchor_visible else "N"
    return item


def _graphic_item(graphic: Graphic) -> Dataset:
    item = Dataset()
    item.GraphicAnnotationUnits = "PIXEL"
    item.GraphicDimensions = 2
    item.NumberOfGraphicPoints = len(graphic.points)
    item.GraphicData = _flat(graphic.points)
    item.GraphicType = GraphicTypeValues(graphic.type).value
    if graphic.closed:
        item.GraphicFilled = "Y" if graphic.filled else "N"
    return item


def _layer_item(layer: GraphicLayer) -> Dataset:
    item = Dataset()
    item.GraphicLayer = layer.name
    item.GraphicLayerOrder = layer.order
    if layer.grey is not None:
        item.GraphicLayerRecommendedDisplayGrayscaleValue = layer.grey
    if layer.rgb is not None:
        item.GraphicLayerRecommendedDisplayCIELabValue = list(rgb_to_cielab(layer.rgb))
    if layer.description:
        item.GraphicLayerDescription = layer.description
    return item


def _voi_item(voi: VoiSetting) -> Dataset:
    item = Dataset()
    if voi.images:
        item.ReferencedImageSequence = image_references(voi.images)
    if voi.lut is not None:
        item.VOILUTSequence = DicomSequence([_lut_item(voi.lut)])
    if voi.window is not None:
        item.WindowCenter = ds_value(voi.window.center)
        item.WindowWidth = ds_value(voi.window.width)
        if voi.explanation:
            item.WindowCenterWidthExplanation = voi.explanation
        if voi.function != "LINEAR":
            item.VOILUTFunction = voi.function
    return item


def _laterality(image: Dataset) -> str:
    """Laterality (0020,0060) of the image's series, else of the image.

    Type 2C (PS3.3 C.7.3.1): present, empty when unknown. Whether the body
    part is paired only the image can tell; Image Laterality R or L says so.
    """
    for keyword in ("Laterality", "ImageLaterality"):
        value = str(image.get(keyword, "") or "").strip().upper()
        if value in ("R", "L"):
            return value
    return ""


def build_presentation_state(
    state: PresentationState,
    sources: Sequence[Dataset],
    *,
    series_uid: str | None = None,
    series_number: int = PR_SERIES_NUMBER,
    instance_number: int = 1,
    sop_instance_uid: str | None = None,
    now: dt.datetime | None = None,
    manufacturer: str = MANUFACTURER,
) -> Dataset:
    """Write *state* as a Grayscale Softcopy Presentation State.

    The modules and attributes are those of tables 47 and 49-62 of the
    conformance statement (PS3.3 A.33.1): Patient and General Study copied
    from the first image, a General Series of modality PR, Presentation
    State Identification and Relationship, Displayed Area, Softcopy
    Presentation LUT and SOP Common always; Display Shutter, Graphic
    Annotation with Graphic Layer, Spatial Transformation, Modality LUT and
    Softcopy VOI LUT when the (completed) state has them.

    Parameters
    ----------
    state : PresentationState
        What to write; see :func:`complete_state` for what is added.
    sources : sequence of pydicom.dataset.Dataset
        The referenced images' data sets (headers suffice).
    series_uid, series_number, instance_number
        Where the object goes: new series UID when None.
    sop_instance_uid : str, optional
        A new UID under our root when None.
    now : datetime, optional
        Presentation Creation Date and Time (the current time when None).
    manufacturer : str
        General Equipment's Manufacturer.

    Returns
    -------
    pydicom.dataset.Dataset
        Without File Meta: the store writes it (with our Implementation
        Class UID) when the object is ingested.

    Raises
    ------
    ValueError
        See :func:`complete_state`; among them colour images, which a
        *Grayscale* presentation state cannot apply to.
    """
    full = complete_state(state, sources)
    by_uid = sources_by_uid(sources)
    first = by_uid[full.images[0].SOPInstanceUID]
    ds = Dataset()
    copy_patient_study(ds, first)
    # General Series (table 51), Presentation Series (52), Equipment (53).
    ds.Modality = "PR"
    ds.SeriesInstanceUID = series_uid or new_uid()
    ds.SeriesNumber = series_number
    ds.Laterality = _laterality(first)
    ds.Manufacturer = manufacturer
    # Presentation State Identification and Relationship (table 54).
    ds.InstanceNumber = instance_number
    ds.ContentLabel = full.label
    ds.ContentDescription = full.description
    ds.PresentationCreationDate, ds.PresentationCreationTime = stamp(now)
    ds.ContentCreatorName = full.creator
    ds.ReferencedSeriesSequence = DicomSequence()
    for series, refs in by_series(full.images).items():
        item = Dataset()
        item.ReferencedImageSequence = image_references(refs)
        item.SeriesInstanceUID = series
        ds.ReferencedSeriesSequence.append(item)
    if full.shutter is not None:  # Display Shutter (table 55)
        _write_shutter(ds, full.shutter)
    ds.DisplayedAreaSelectionSequence = DicomSequence(
        [_area_item(area) for area in full.displayed_areas]
    )
    if full.annotations:  # Graphic Annotation (57) and Graphic Layer (59)
        ds.GraphicAnnotationSequence = DicomSequence()
        for annotation in full.annotations:
            item = Dataset()
            if annotation.images:
                item.ReferencedImageSequence = image_references(annotation.images)
            item.GraphicLayer = annotation.layer
            if annotation.texts:
                item.TextObjectSequence = DicomSequence(
                    [_text_item(t) for t in annotation.texts]
                )
            if annotation.graphics:
                item.GraphicObjectSequence = DicomSequence(
                    [_graphic_item(g) for g in annotation.graphics]
                )
            ds.GraphicAnnotationSequence.append(item)
        ds.GraphicLayerSequence = DicomSequence([_layer_item(x) for x in full.layers])
    if full.rotation or full.flip:  # Spatial Transformation (table 58)
        ds.ImageRotation = full.rotation
        ds.ImageHorizontalFlip = "Y" if full.flip else "N"
    modality = full.modality
    if modality is not None and modality != ModalityTransform():  # table 60
        if modality.lut is not None:
            item = _lut_item(modality.lut)
            item.ModalityLUTType = modality.type
            ds.ModalityLUTSequence = DicomSequence([item])
        else:
            ds.RescaleIntercept = ds_value(modality.intercept)
            ds.RescaleSlope = ds_value(modality.slope)
            ds.RescaleType = modality.type
    if full.voi:  # Softcopy VOI LUT (table 61)
        ds.SoftcopyVOILUTSequence = DicomSequence([_voi_item(v) for v in full.voi])
    if full.presentation_lut is not None:  # Softcopy Presentation LUT (62)
        ds.PresentationLUTSequence = DicomSequence([_lut_item(full.presentation_lut)])
    else:
        ds.PresentationLUTShape = full.presentation_shape
    # SOP Common (table 65).
    ds.SOPClassUID = GSPS_SOP_CLASS
    ds.SOPInstanceUID = sop_instance_uid or new_uid()
    set_character_set(ds)
    return ds


# -- Reading --------------------------------------------------------------


def _items(ds: Dataset, keyword: str, where: str = "") -> list[Dataset]:
    """The items of a sequence attribute; [] when absent or empty."""
    if keyword not in ds:
        return []
    value = ds[keyword].value
    if value is None or value == "":
        return []
    if not isinstance(value, DicomSequence):
        raise ValueError(
            f"{where or 'the presentation state'}: {keyword} is not a sequence"
        )
    return list(value)


def _text(item: Dataset, keyword: str) -> str:
    value = item.get(keyword)
    if value is None:
        return ""
    if (
        not isinstance(value, str)
        and hasattr(value, "__len__")
        and not hasattr(value, "family_name")
    ):
        value = value[0] if len(value) else ""
    return str(value).strip()


def _required(item: Dataset, keyword: str, where: str) -> Any:
    if keyword not in item or item[keyword].value in (None, ""):
        raise ValueError(f"{where}: {keyword} is missing")
    return item[keyword].value


def _floats(item: Dataset, keyword: str, where: str) -> list[float]:
    value = _required(item, keyword, where)
    try:
        values = [value] if isinstance(value, float | int | str) else list(value)
        # FL values come as 32-bit floats: their shortest decimal form is the
        # number that was written.
        return [float(str(np.float32(v))) for v in values]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {keyword} is not a list of numbers") from exc


def _decimals(item: Dataset, keyword: str, where: str) -> list[float]:
    value = _required(item, keyword, where)
    try:
        values = [value] if isinstance(value, float | int | str) else list(value)
        return [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {keyword} is not a list of numbers") from exc


def _point(item: Dataset, keyword: str, where: str) -> Point:
    values = _floats(item, keyword, where)
    if len(values) != 2:
        raise ValueError(f"{where}: {keyword} has {len(values)} values, not 2")
    return values[0], values[1]


def _read_lut(item: Dataset, where: str) -> LookupTable:
    """A LUT item's descriptor and data (PS3.3 C.11.1.1)."""
    descriptor = (
        read_int_list(item, "LUTDescriptor", where) if "LUTDescriptor" in item else []
    )
    if len(descriptor) != 3:
        raise ValueError(f"{where}: LUT Descriptor is missing or has not 3 values")
    entries = descriptor[0] % 65536 or 65536
    first, bits = descriptor[1], descriptor[2]
    raw = _required(item, "LUTData", where)
    if isinstance(raw, bytes):
        if len(raw) >= 2 * entries:
            data = np.frombuffer(raw[: 2 * entries], dtype="<u2")
        elif bits <= 8 and len(raw) in (entries, entries + 1):
            data = np.frombuffer(raw[:entries], dtype=np.uint8)
        else:
            raise ValueError(
                f"{where}: LUT Data has {len(raw)} bytes for {entries} entries"
            )
        values = tuple(int(v) for v in data)
    else:
        values = tuple(int(v) for v in ([raw] if isinstance(raw, int) else raw))
    if len(values) != entries:
        raise ValueError(
            f"{where}: LUT Data has {len(values)} entries, the descriptor "
            f"says {entries}"
        )
    return LookupTable(first, bits, values, _text(item, "LUTExplanation"))


def _refs(item: Dataset, where: str, series_of: dict[str, str]) -> tuple[ImageRef, ...]:
    out = []
    for ref in _items(item, "ReferencedImageSequence", where):
        uid = str(_required(ref, "ReferencedSOPInstanceUID", where))
        out.append(
            ImageRef(
                str(ref.get("ReferencedSOPClassUID", "") or ""),
                uid,
                series_of.get(uid, ""),
                read_frames(ref, where),
            )
        )
    return tuple(out)


def _read_images(ds: Dataset) -> list[ImageRef]:
    where = "Referenced Series Sequence"
    series_items = _items(ds, "ReferencedSeriesSequence")
    if not series_items:
        raise ValueError(
            "the presentation state has no Referenced Series Sequence: it "
            "applies to no image"
        )
    images = []
    for item in series_items:
        series = str(_required(item, "SeriesInstanceUID", where))
        refs = _items(item, "ReferencedImageSequence", where)
        if not refs:
            raise ValueError(
                f"{where}: series '{series}' has no Referenced Image Sequence"
            )
        for ref in refs:
            images.append(
                ImageRef(
                    str(_required(ref, "ReferencedSOPClassUID", where)),
                    str(_required(ref, "ReferencedSOPInstanceUID", where)),
                    series,
                    read_frames(ref, where),
                )
            )
    return images


def _read_modality(ds: Dataset) -> ModalityTransform:
    items = _items(ds, "ModalityLUTSequence")
    if items:
        where = "Modality LUT Sequence"
        return ModalityTransform(
            type=_text(items[0], "ModalityLUTType") or "US",
            lut=_read_lut(items[0], where),
        )
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        where = "Modality LUT"
        try:
            slope = _decimals(ds, "RescaleSlope", where)[0]
            intercept = _decimals(ds, "RescaleIntercept", where)[0]
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: Rescale Slope or Intercept is not a number"
            ) from exc
        return ModalityTransform(slope, intercept, _text(ds, "RescaleType") or "US")
    return ModalityTransform()


def _read_voi(ds: Dataset, series_of: dict[str, str]) -> list[VoiSetting]:
    out = []
    for number, item in enumerate(_items(ds, "SoftcopyVOILUTSequence"), 1):
        where = f"Softcopy VOI LUT Sequence item {number}"
        images = _refs(item, where, series_of)
        lut_items = _items(item, "VOILUTSequence", where)
        lut = (
            _read_lut(lut_items[0], f"{where}, VOI LUT Sequence") if lut_items else None
        )
        window = None
        if "WindowCenter" in item or "WindowWidth" in item:
            centers = _decimals(item, "WindowCenter", where)
            widths = _decimals(item, "WindowWidth", where)
            try:
                window = Window(centers[0], widths[0])
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{where}: window {centers}/{widths}: {exc}") from exc
        if window is None and lut is None:
            raise ValueError(f"{where} has neither a window nor a VOI LUT Sequence")
        function = _text(item, "VOILUTFunction").upper() or "LINEAR"
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            logger.warning("%s: VOI LUT Function '%s' read as LINEAR", where, function)
            function = "LINEAR"
        out.append(
            VoiSetting(
                images,
                window,
                function,
                _text(item, "WindowCenterWidthExplanation"),
                lut,
            )
        )
    return out


def _read_areas(ds: Dataset, series_of: dict[str, str]) -> list[DisplayedArea]:
    items = _items(ds, "DisplayedAreaSelectionSequence")
    if not items:
        raise ValueError(
            "the presentation state has no Displayed Area Selection Sequence "
            "(the Displayed Area module is mandatory)"
        )
    out = []
    for number, item in enumerate(items, 1):
        where = f"Displayed Area Selection Sequence item {number}"
        corners = []
        for keyword in (
            "DisplayedAreaTopLeftHandCorner",
            "DisplayedAreaBottomRightHandCorner",
        ):
            values = read_int_list(item, keyword, where) if keyword in item else []
            if len(values) != 2:
                raise ValueError(f"{where}: {keyword} is missing or has not 2 values")
            corners.append((values[0], values[1]))
        mode_text = _text(item, "PresentationSizeMode") or "SCALE TO FIT"
        try:
            mode = PresentationSizeModeValues(mode_text)
        except ValueError:
            logger.warning(
                "%s: Presentation Size Mode '%s' read as SCALE TO FIT", where, mode_text
            )
            mode = PresentationSizeModeValues.SCALE_TO_FIT
        spacing = None
        if item.get("PresentationPixelSpacing"):
            values = _decimals(item, "PresentationPixelSpacing", where)
            if len(values) == 2:
                spacing = (values[0], values[1])
        aspect = None
        if spacing is None and item.get("PresentationPixelAspectRatio"):
            ratio = read_int_list(item, "PresentationPixelAspectRatio", where)
            if len(ratio) == 2:
                aspect = (ratio[0], ratio[1])
        if spacing is None and aspect is None:
            aspect = (1, 1)
        magnification = None
        if mode is PresentationSizeModeValues.MAGNIFY:
            magnification = _floats(item, "PresentationPixelMagnificationRatio", where)[
                0
            ]
        out.append(
            DisplayedArea(
                corners[0],
                corners[1],
                mode,
                spacing,
                aspect,
                magnification,
                _refs(item, where, series_of),
            )
        )
    return out


def _read_shutter(ds: Dataset) -> Shutter | None:
    if "ShutterShape" not in ds:
        return None
    where = "Display Shutter"
    value = ds.ShutterShape
    shapes = [
        str(v).strip().upper()
        for v in (value if not isinstance(value, str) else [value])
    ]
    shutter = Shutter()
    for shape in shapes:
        if shape == ShutterShapeValues.RECTANGULAR:
            edges = []
            for keyword in (
                "ShutterLeftVerticalEdge",
                "ShutterRightVerticalEdge",
                "ShutterUpperHorizontalEdge",
                "ShutterLowerHorizontalEdge",
            ):
                _required(ds, keyword, where)
                edges.append(read_int_list(ds, keyword, where)[0])
            shutter.rectangle = (edges[0], edges[1], edges[2], edges[3])
        elif shape == ShutterShapeValues.CIRCULAR:
            _required(ds, "CenterOfCircularShutter", where)
            center = read_int_list(ds, "CenterOfCircularShutter", where)
            _required(ds, "RadiusOfCircularShutter", where)
            radius = read_int_list(ds, "RadiusOfCircularShutter", where)[0]
            if len(center) != 2:
                raise ValueError(
                    f"{where}: Center of Circular Shutter has not 2 values"
                )
            shutter.circle = ((center[1], center[0]), radius)
        elif shape == ShutterShapeValues.POLYGONAL:
            _required(ds, "VerticesOfThePolygonalShutter", where)
            values = read_int_list(ds, "VerticesOfThePolygonalShutter", where)
            if len(values) % 2 or len(values) < 6:
                raise ValueError(
                    f"{where}: Vertices of the Polygonal Shutter has {len(values)} "
                    "values, not an even number of at least 6"
                )
            shutter.polygon = tuple(
                (values[i + 1], values[i]) for i in range(0, len(values), 2)
            )
        else:
            logger.warning(
                "%s: shutter shape '%s' is not supported; ignored", where, shape
            )
    if not shutter.shapes:
        return None
    if "ShutterPresentationValue" in ds and ds.ShutterPresentationValue is not None:
        shutter.value = int(ds.ShutterPresentationValue)
    else:
        logger.warning("%s: no Shutter Presentation Value; black is used", where)
    return shutter


def _read_layers(ds: Dataset) -> list[GraphicLayer]:
    out = []
    for number, item in enumerate(_items(ds, "GraphicLayerSequence"), 1):
        where = f"Graphic Layer Sequence item {number}"
        name = str(_required(item, "GraphicLayer", where)).strip()
        order = (
            read_int_list(item, "GraphicLayerOrder", where)
            if "GraphicLayerOrder" in item
            else []
        )
        if not order:
            raise ValueError(f"{where}: GraphicLayerOrder is missing")
        grey = item.get("GraphicLayerRecommendedDisplayGrayscaleValue")
        rgb = None
        lab = item.get("GraphicLayerRecommendedDisplayCIELabValue")
        old_rgb = item.get("GraphicLayerRecommendedDisplayRGBValue")
        if lab is not None and len(lab) == 3:
            rgb = cielab_to_rgb([int(v) for v in lab])
        elif old_rgb is not None and len(old_rgb) == 3:
            # Retired (0070,0067): 16 bits per channel.
            rgb = tuple(int(v) >> 8 for v in old_rgb)  # type: ignore[assignment]
        out.append(
            GraphicLayer(
                name,
                order[0],
                None if grey is None or grey == "" else int(grey),
                rgb,
                _text(item, "GraphicLayerDescription"),
            )
        )
    return out


#: Maps a point in DISPLAY units (0..1 of the displayed area, after the
#: spatial transformation) to image pixel coordinates.
_Mapper = Callable[[Point], Point]


def _display_mapper(
    state: PresentationState, images: tuple[ImageRef, ...]
) -> _Mapper | None:
    """How DISPLAY units map to the image, or None when it is not one way.

    DISPLAY coordinates are fractions of the displayed area as shown, that
    is after the rotation and the flip (PS3.3 C.10.5.1.1); they are undone
    here, the flip first, to reach the image. An annotation on images with
    different displayed areas has no single mapping.
    """
    targets = images or tuple(state.images)
    areas = []
    for ref in targets:
        frames = ref.frames or (1,)
        for frame in frames:
            area = state.area_for(ref.SOPInstanceUID, frame)
            if area is None:
                return None
            areas.append((area.top_left, area.bottom_right))
    if not areas or len(set(areas)) != 1:
        return None
    (ca, ra), (cb, rb) = areas[0]
    c0, c1, r0, r1 = min(ca, cb), max(ca, cb), min(ra, rb), max(ra, rb)
    rotation, flip = state.rotation, state.flip

    def to_image(point: Point) -> Point:
        u, v = point
        if flip:  # applied last, undone first
            u = 1 - u
        if rotation == 90:
            u, v = v, 1 - u
        elif rotation == 180:
            u, v = 1 - u, 1 - v
        elif rotation == 270:
            u, v = 1 - v, u
        return (c0 - 1) + u * (c1 - c0 + 1), (r0 - 1) + v * (r1 - r0 + 1)

    return to_image


def _units(item: Dataset, keyword: str, where: str) -> str:
    units = _text(item, keyword).upper()
    if not units:
        raise ValueError(f"{where}: {keyword} is missing")
    return units


def _read_graphic(item: Dataset, where: str, mapper: _Mapper | None) -> Graphic | None:
    units = _units(item, "GraphicAnnotationUnits", where)
    kind_text = _text(item, "GraphicType").upper()
    try:
        kind = GraphicTypeValues(kind_text)
    except ValueError:
        logger.warning(
            "%s: graphic type '%s' is not supported; dropped", where, kind_text
        )
        return None
    dimensions = item.get("GraphicDimensions", 2)
    if dimensions not in (2, None, ""):
        logger.warning("%s: %s-dimensional graphic dropped", where, dimensions)
        return None
    values = _floats(item, "GraphicData", where)
    if len(values) % 2:
        raise ValueError(f"{where}: Graphic Data has an odd number of values")
    points = tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))
    count = item.get("NumberOfGraphicPoints")
    if count not in (None, "") and int(count) != len(points):
        raise ValueError(
            f"{where}: Number of Graphic Points is {count}, Graphic Data has "
            f"{len(points)} points"
        )
    low, high = _POINTS[kind]
    if len(points) < low or (high is not None and len(points) > high):
        raise ValueError(f"{where}: a {kind.value} graphic with {len(points)} points")
    if units == "DISPLAY":
        if mapper is None:
            logger.warning(
                "%s: graphic in DISPLAY units on images of different displayed "
                "areas cannot be placed; dropped",
                where,
            )
            return None
        points = tuple(mapper(p) for p in points)
    elif units != "PIXEL":
        logger.warning(
            "%s: graphic in %s units is not supported; dropped", where, units
        )
        return None
    return Graphic(kind, points, _text(item, "GraphicFilled").upper() == "Y")


def _read_text(item: Dataset, where: str, mapper: _Mapper | None) -> TextLabel | None:
    text = str(_required(item, "UnformattedTextValue", where))
    anchor = box = None
    if "AnchorPoint" in item and item.AnchorPoint is not None:
        units = _units(item, "AnchorPointAnnotationUnits", where)
        anchor = _point(item, "AnchorPoint", where)
        if units == "DISPLAY" and mapper is not None:
            anchor = mapper(anchor)
        elif units != "PIXEL":
            logger.warning("%s: text anchor in %s units cannot be placed", where, units)
            anchor = None
    if "BoundingBoxTopLeftHandCorner" in item:
        units = _units(item, "BoundingBoxAnnotationUnits", where)
        top_left = _point(item, "BoundingBoxTopLeftHandCorner", where)
        bottom_right = _point(item, "BoundingBoxBottomRightHandCorner", where)
        if units == "DISPLAY" and mapper is not None:
            (x0, y0), (x1, y1) = mapper(top_left), mapper(bottom_right)
            box = ((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1)))
        elif units == "PIXEL":
            box = (top_left, bottom_right)
        else:
            logger.warning("%s: text box in %s units cannot be placed", where, units)
    if anchor is None and box is None:
        logger.warning(
            "%s: text '%s' has no position that can be shown; dropped", where, text
        )
        return None
    justification = _text(item, "BoundingBoxTextHorizontalJustification").upper()
    visible = _text(item, "AnchorPointVisibility").upper() != "N"
    return TextLabel(
        text,
        anchor,
        box,
        visible if anchor is not None else True,
        justification
        if box is not None and justification in _JUSTIFICATIONS
        else "LEFT",
    )


def _read_annotations(
    ds: Dataset, state: PresentationState, series_of: dict[str, str]
) -> list[Annotation]:
    out = []
    for number, item in enumerate(_items(ds, "GraphicAnnotationSequence"), 1):
        where = f"Graphic Annotation Sequence item {number}"
        layer = str(_required(item, "GraphicLayer", where)).strip()
        images = _refs(item, where, series_of)
        mapper = _display_mapper(state, images)
        graphics = []
        for index, graphic in enumerate(
            _items(item, "GraphicObjectSequence", where), 1
        ):
            read = _read_graphic(graphic, f"{where}, graphic {index}", mapper)
            if read is not None:
                graphics.append(read)
        texts = []
        for index, text in enumerate(_items(item, "TextObjectSequence", where), 1):
            read_text = _read_text(text, f"{where}, text {index}", mapper)
            if read_text is not None:
                texts.append(read_text)
        if "CompoundGraphicSequence" in item:
            logger.warning("%s: compound graphics are not supported; dropped", where)
        if graphics or texts:
            out.append(Annotation(layer, images, graphics, texts))
    return out


def _undeclared_layers(state: PresentationState) -> list[GraphicLayer]:
    """Layers the annotations use that the Graphic Layer Sequence lacks.

    PS3.3 C.10.5 requires every Graphic Layer an annotation names to be
    declared in the Graphic Layer module (C.10.7); some systems do not. Their
    annotations are kept, in a layer of that name above the declared ones,
    without a recommended colour, and the omission is logged.
    """
    declared = {layer.name for layer in state.layers}
    top = max((layer.order for layer in state.layers), default=0)
    added: list[GraphicLayer] = []
    for annotation in state.annotations:
        if annotation.layer in declared:
            continue
        declared.add(annotation.layer)
        top += 1
        logger.warning(
            "Graphic layer '%s' is used by an annotation but not declared in the "
            "Graphic Layer Sequence (PS3.3 C.10.5); read into a layer of that name",
            annotation.layer,
        )
        added.append(GraphicLayer(annotation.layer, top))
    return added


def _unsupported(ds: Dataset) -> list[str]:
    """What the state holds that this reader ignores (logged, not an error)."""
    found = []
    if "ShutterOverlayGroup" in ds:
        found.append("bitmap shutter")
    if "MaskSubtractionSequence" in ds:
        found.append("mask subtraction")
    groups = {tag.group for tag in ds.keys() if 0x6000 <= tag.group <= 0x601E}
    if any((group << 16) | 0x1001 in ds for group in groups):
        found.append("overlay activation")
    if "GraphicGroupSequence" in ds:
        found.append("graphic groups")
    return found


def presentation_from_dataset(ds: Dataset) -> PresentationState:
    """Read a Grayscale Softcopy Presentation State into the model.

    Any GSPS is accepted, whoever made it (PS3.3 A.33.1). Absent optional
    modules read as their defaults: no shutter, no annotations, no rotation,
    identity Modality LUT (PS3.4 N.2), no VOI setting. Graphics and text in
    DISPLAY units are mapped onto the image through the displayed area,
    rotation and flip; what cannot be shown (bitmap shutters, overlay
    activation, graphics in other units, unknown graphic types) is dropped
    with a warning in the log.

    Raises
    ------
    ValueError
        The data set is not a GSPS, or required content is missing or
        malformed (Referenced Series Sequence, Displayed Area Selection,
        a LUT whose data does not match its descriptor, a window width
        below 1, graphic data with an odd number of values...); the message
        names the attribute and where it is.
    """
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class != GSPS_SOP_CLASS:
        raise ValueError(
            f"SOP Class '{sop_class}' is not Grayscale Softcopy Presentation "
            "State Storage"
        )
    try:
        return _read_state(ds)
    except ValueError:
        raise
    except Exception as exc:  # pydicom cannot decode a value
        raise ValueError(f"the presentation state cannot be read: {exc}") from exc


def _read_state(ds: Dataset) -> PresentationState:
    images = _read_images(ds)
    series_of = {ref.SOPInstanceUID: ref.SeriesInstanceUID for ref in images}
    state = PresentationState(images=images)
    state.label = _text(ds, "ContentLabel") or "UNNAMED"
    state.description = _text(ds, "ContentDescription")
    state.creator = _text(ds, "ContentCreatorName")
    state.modality = _read_modality(ds)
    state.voi = _read_voi(ds, series_of)
    lut_items = _items(ds, "PresentationLUTSequence")
    if lut_items:
        state.presentation_lut = _read_lut(lut_items[0], "Presentation LUT Sequence")
    else:
        shape = _text(ds, "PresentationLUTShape").upper()
        if shape not in _SHAPES:
            logger.warning(
                "Presentation LUT Shape '%s' is not IDENTITY or INVERSE; IDENTITY used",
                shape,
            )
            shape = "IDENTITY"
        state.presentation_shape = shape
    if "ImageRotation" in ds:
        rotation = read_int_list(ds, "ImageRotation", "Spatial Transformation")
        if rotation and rotation[0] in _ROTATIONS:
            state.rotation = rotation[0]
        elif rotation:
            logger.warning(
                "Image Rotation %s is not a multiple of 90; ignored", rotation[0]
            )
    state.flip = _text(ds, "ImageHorizontalFlip").upper() == "Y"
    state.displayed_areas = _read_areas(ds, series_of)
    state.shutter = _read_shutter(ds)
    state.layers = _read_layers(ds)
    state.annotations = _read_annotations(ds, state, series_of)
    state.layers += _undeclared_layers(state)
    for what in _unsupported(ds):
        logger.warning("The presentation state's %s is not supported; ignored", what)
    return state
