"""What a reader did to an image, as plain data: the presentation model.

One model serves three masters. The viewer keeps the state of each viewport
in it, :mod:`jivex_core.imaging.gsps` writes it as a Grayscale Softcopy
Presentation State and reads any GSPS back into it, and the rendering
pipeline applies it. Because the same object travels from the screen to the
file and back, a state saved and reopened is the state that was on screen.

Coordinates follow the GSPS conventions so that nothing is converted twice:

- graphic and text positions are *image* coordinates in PIXEL units (PS3.3
  C.10.5.1.2): ``(x, y)`` = (column, row) as floats, ``(0, 0)`` is the top
  left corner of the first pixel and ``(Columns, Rows)`` the bottom right
  corner of the last one, before any rotation or flip;
- displayed area corners are 1-based pixel positions ``(column, row)``
  (PS3.3 C.10.4), inclusive, of the untransformed image; the top left
  corner is the pixel shown top left *after* rotation and flip (with a
  rotation of 90 degrees, the image's bottom left pixel):
  :func:`displayed_corners` gives them for a region;
- shutter edges and vertices are 1-based pixel positions, as the Display
  Shutter module gives them (PS3.3 C.7.6.11); note that the circular and
  polygonal shutters store ``row\\column`` in DICOM, while this model always
  says ``(column, row)``.

The rotation is clockwise, in steps of 90 degrees, and the flip comes
after it: Image Horizontal Flip flips the image "after any Image Rotation
has been applied" (PS3.3 C.10.6.1), which is also how dicom3tools'
``dciodvfy`` checks the displayed area of a rotated and flipped state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from jivex_core.imaging.render import Window

#: A point in image coordinates, ``(column, row)`` as floats.
Point = tuple[float, float]


@dataclass(frozen=True)
class ImageRef:
    """One referenced image, or some of its frames.

    Attributes
    ----------
    SOPClassUID, SOPInstanceUID : str
        The image.
    SeriesInstanceUID : str
        Its series, needed to group references as GSPS and KO do; not part
        of the identity of the image.
    frames : tuple of int
        1-based Referenced Frame Numbers; empty means every frame.
    """

    SOPClassUID: str
    SOPInstanceUID: str
    SeriesInstanceUID: str = field(default="", compare=False)
    frames: tuple[int, ...] = ()

    def covers(self, sop_instance_uid: str, frame: int = 1) -> bool:
        """Whether this reference applies to *frame* (1-based) of an image."""
        return self.SOPInstanceUID == sop_instance_uid and (
            not self.frames or frame in self.frames
        )


def applies(images: tuple[ImageRef, ...], sop_instance_uid: str, frame: int) -> bool:
    """Whether an item restricted to *images* applies to a frame.

    An empty tuple means the item applies to every image the presentation
    state references, as PS3.3 says when the Referenced Image Sequence of an
    item is absent.
    """
    return not images or any(ref.covers(sop_instance_uid, frame) for ref in images)


class GraphicTypeValues(StrEnum):
    """Graphic Type (0070,0023), PS3.3 C.10.5.1.2."""

    POINT = "POINT"
    POLYLINE = "POLYLINE"
    INTERPOLATED = "INTERPOLATED"
    CIRCLE = "CIRCLE"
    ELLIPSE = "ELLIPSE"


@dataclass
class Graphic:
    """One item of the Graphic Object Sequence, in image coordinates.

    CIRCLE is (center, a point on the circle); ELLIPSE is the two ends of the
    major axis then the two ends of the minor axis; a closed POLYLINE has its
    first point repeated at the end (the rectangles and polygons of the
    viewer are written so).
    """

    type: GraphicTypeValues
    points: tuple[Point, ...]
    filled: bool = False

    @classmethod
    def polygon(cls, points: tuple[Point, ...], filled: bool = False) -> Graphic:
        """A closed POLYLINE through *points*, its first point repeated last.

        PS3.3 C.10.5.1.2 draws a POLYLINE as open unless its last point
        equals its first, so a polygon must say so explicitly.
        """
        points = tuple(points)
        if points and points[-1] != points[0]:
            points = (*points, points[0])
        return cls(GraphicTypeValues.POLYLINE, points, filled)

    @classmethod
    def rectangle(
        cls, top_left: Point, bottom_right: Point, filled: bool = False
    ) -> Graphic:
        """A closed POLYLINE along the edges of an upright rectangle."""
        (x0, y0), (x1, y1) = top_left, bottom_right
        return cls.polygon(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), filled)

    @property
    def closed(self) -> bool:
        """Whether the graphic encloses an area (circle, ellipse, closed line)."""
        if self.type in (GraphicTypeValues.CIRCLE, GraphicTypeValues.ELLIPSE):
            return True
        return (
            self.type in (GraphicTypeValues.POLYLINE, GraphicTypeValues.INTERPOLATED)
            and len(self.points) > 2
            and self.points[0] == self.points[-1]
        )


@dataclass
class TextLabel:
    """One item of the Text Object Sequence, in image coordinates.

    At least one of *anchor* and *box* is set; *box* is (top left,
    bottom right). *justification* places the text in its box: ``LEFT``,
    ``RIGHT`` or ``CENTER`` (Bounding Box Text Horizontal Justification).
    """

    text: str
    anchor: Point | None = None
    box: tuple[Point, Point] | None = None
    anchor_visible: bool = True
    justification: str = "LEFT"


@dataclass
class GraphicLayer:
    """A Graphic Layer (PS3.3 C.10.7): a name, a drawing order and a colour.

    *grey* is a P-value (0..65535); *rgb* is 8 bits per channel for the
    screen and is written as CIELab in the file.
    """

    name: str
    order: int
    grey: int | None = None
    rgb: tuple[int, int, int] | None = None
    description: str = ""


@dataclass
class Annotation:
    """What was drawn on some images in one layer: an item of (0070,0001)."""

    layer: str
    images: tuple[ImageRef, ...] = ()
    graphics: list[Graphic] = field(default_factory=list)
    texts: list[TextLabel] = field(default_factory=list)


@dataclass(frozen=True)
class LookupTable:
    """A LUT with its descriptor's meaning (PS3.3 C.11.1.1).

    Attributes
    ----------
    first_mapped : int
        The input value mapped to the first entry (second descriptor value).
    bits : int
        Bits of each entry (third descriptor value).
    data : tuple of int
        The entries. A descriptor whose first value is 0 means 65536
        entries; ``len(data)`` is always the real number.
    explanation : str
        LUT Explanation (0028,3003).
    """

    first_mapped: int
    bits: int
    data: tuple[int, ...]
    explanation: str = ""

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Map *values* through the table, clamping to its first/last entry."""
        table = np.asarray(self.data, dtype=np.float32)
        index = np.asarray(values, dtype=np.float64) - self.first_mapped
        index = np.clip(index, 0, len(table) - 1).astype(np.intp)
        return table[index]


@dataclass(frozen=True)
class ModalityTransform:
    """A Modality LUT to use instead of the images' own (PS3.3 C.11.1).

    Either a rescale (*slope*, *intercept*, *type*) or a *lut*.
    """

    slope: float = 1.0
    intercept: float = 0.0
    type: str = "US"
    lut: LookupTable | None = None


@dataclass
class VoiSetting:
    """A Softcopy VOI LUT item (PS3.3 C.11.8): a window or a VOI LUT.

    *images* empty means every image of the state.
    """

    images: tuple[ImageRef, ...] = ()
    window: Window | None = None
    function: str = "LINEAR"
    explanation: str = ""
    lut: LookupTable | None = None


class PresentationSizeModeValues(StrEnum):
    """Presentation Size Mode (0070,0100), PS3.3 C.10.4."""

    SCALE_TO_FIT = "SCALE TO FIT"
    TRUE_SIZE = "TRUE SIZE"
    MAGNIFY = "MAGNIFY"


@dataclass
class DisplayedArea:
    """A Displayed Area Selection item (PS3.3 C.10.4).

    *top_left* and *bottom_right* are 1-based ``(column, row)`` of the
    pixels shown top left and bottom right once the state's rotation and
    flip are applied (see :func:`displayed_corners`), and may lie outside
    the image (the outside shows as background). *pixel_spacing* is
    ``(row spacing, column spacing)`` in mm, or None with *aspect_ratio*
    given instead. *magnification* is the Presentation Pixel Magnification
    Ratio of MAGNIFY; with SCALE TO FIT it may carry the scale on screen
    (display pixels per image pixel), which is written only when the area
    must be cut to the image (:func:`jivex_core.imaging.gsps.complete_state`:
    no corner left of or above the image is written) and then as MAGNIFY,
    so that the image keeps its size.
    """

    top_left: tuple[int, int]
    bottom_right: tuple[int, int]
    size_mode: PresentationSizeModeValues = PresentationSizeModeValues.SCALE_TO_FIT
    pixel_spacing: tuple[float, float] | None = None
    aspect_ratio: tuple[int, int] | None = (1, 1)
    magnification: float | None = None
    images: tuple[ImageRef, ...] = ()


def displayed_corners(
    left: int, top: int, right: int, bottom: int, rotation: int = 0, flip: bool = False
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The Displayed Area corners of an upright region, for a transformation.

    The region runs from column *left* to *right* and row *top* to
    *bottom* (1-based, inclusive) of the untransformed image. PS3.3 C.10.4
    names the corners by the pixels shown top left and bottom right after
    the rotation (clockwise) and then the flip: with 90 degrees, the
    region's bottom left and top right.
    """
    corners = ((left, top), (right, top), (right, bottom), (left, bottom))
    turns = (rotation // 90) % 4
    if flip:
        return corners[(1 - turns) % 4], corners[(3 - turns) % 4]
    return corners[-turns % 4], corners[(2 - turns) % 4]


class ShutterShapeValues(StrEnum):
    """Shutter Shape (0018,1600), PS3.3 C.7.6.11."""

    RECTANGULAR = "RECTANGULAR"
    CIRCULAR = "CIRCULAR"
    POLYGONAL = "POLYGONAL"


@dataclass
class Shutter:
    """The Display Shutter: every shape given is applied (their intersection
    stays visible). Positions are 1-based ``(column, row)`` pixels.

    Attributes
    ----------
    rectangle : (left, right, upper, lower) or None
        Vertical edges are columns, horizontal edges rows, inclusive.
    circle : ((column, row), radius) or None
    polygon : tuple of (column, row), or None
    value : int
        Shutter Presentation Value (0018,1622): the P-value shown outside,
        0 (black) to 65535 (white).
    """

    rectangle: tuple[int, int, int, int] | None = None
    circle: tuple[tuple[int, int], int] | None = None
    polygon: tuple[tuple[int, int], ...] | None = None
    value: int = 0

    @property
    def shapes(self) -> list[ShutterShapeValues]:
        """The shapes present, in the order Shutter Shape lists them."""
        shapes = []
        if self.rectangle is not None:
            shapes.append(ShutterShapeValues.RECTANGULAR)
        if self.circle is not None:
            shapes.append(ShutterShapeValues.CIRCULAR)
        if self.polygon is not None:
            shapes.append(ShutterShapeValues.POLYGONAL)
        return shapes


@dataclass
class PresentationState:
    """Everything a GSPS carries, for the images it references.

    A state made by the viewer references the images of one series; one read
    from a file may reference several series. Settings restricted to some
    images (:class:`VoiSetting`, :class:`DisplayedArea`,
    :class:`Annotation`) are looked up per image with :meth:`voi_for`,
    :meth:`area_for` and :meth:`annotations_for`.

    Attributes
    ----------
    images : list of ImageRef
        The images the state applies to (Referenced Series Sequence).
    label : str
        Content Label (0070,0080): upper case, at most 16 characters.
    modality : ModalityTransform or None
        None keeps each image's own modality LUT: the GSPS written for the
        state carries the images' own rescale or LUT, since a presentation
        state without a Modality LUT module means the identity (PS3.4 N.2).
        A state read from a file therefore never has None.
    presentation_shape : str
        ``IDENTITY`` or ``INVERSE`` (Presentation LUT Shape); for
        MONOCHROME1 images a state that shows them as the modality meant
        says INVERSE (PS3.4 N.2.1.1).
    presentation_lut : LookupTable or None
        A Presentation LUT Sequence instead of a shape.
    rotation : int
        Image Rotation (0070,0042): 0, 90, 180 or 270, clockwise.
    flip : bool
        Image Horizontal Flip (0070,0041), applied after the rotation.
    """

    images: list[ImageRef] = field(default_factory=list)
    label: str = "UNNAMED"
    description: str = ""
    creator: str = ""
    modality: ModalityTransform | None = None
    voi: list[VoiSetting] = field(default_factory=list)
    presentation_shape: str = "IDENTITY"
    presentation_lut: LookupTable | None = None
    rotation: int = 0
    flip: bool = False
    displayed_areas: list[DisplayedArea] = field(default_factory=list)
    shutter: Shutter | None = None
    layers: list[GraphicLayer] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)

    def voi_for(self, sop_instance_uid: str, frame: int = 1) -> VoiSetting | None:
        """The VOI setting of one frame (1-based), or None for the image's own."""
        for item in self.voi:
            if applies(item.images, sop_instance_uid, frame):
                return item
        return None

    def area_for(self, sop_instance_uid: str, frame: int = 1) -> DisplayedArea | None:
        """The displayed area of one frame, or None for the whole image."""
        for item in self.displayed_areas:
            if applies(item.images, sop_instance_uid, frame):
                return item
        return None

    def annotations_for(
        self, sop_instance_uid: str, frame: int = 1
    ) -> list[Annotation]:
        """The annotations drawn on one frame, in layer order."""
        order = {layer.name: layer.order for layer in self.layers}
        found = [
            a for a in self.annotations if applies(a.images, sop_instance_uid, frame)
        ]
        return sorted(found, key=lambda a: order.get(a.layer, 0))


@dataclass(frozen=True)
class Code:
    """A coded concept: (Code Value, Coding Scheme Designator, Code Meaning)."""

    value: str
    scheme: str
    meaning: str


#: CID 7010 Key Object Selection Document Title (PS3.16), the titles a
#: reader may give to a set of key images.
KEY_OBJECT_TITLES: tuple[Code, ...] = (
    Code("113000", "DCM", "Of Interest"),
    Code("113001", "DCM", "Rejected for Quality Reasons"),
    Code("113002", "DCM", "For Referring Provider"),
    Code("113003", "DCM", "For Surgery"),
    Code("113004", "DCM", "For Teaching"),
    Code("113005", "DCM", "For Conference"),
    Code("113006", "DCM", "For Therapy"),
    Code("113007", "DCM", "For Patient"),
    Code("113008", "DCM", "For Peer Review"),
    Code("113009", "DCM", "For Research"),
    Code("113010", "DCM", "Quality Issue"),
    Code("113013", "DCM", "Best In Set"),
    Code("113018", "DCM", "For Printing"),
    Code("113020", "DCM", "For Report Attachment"),
    Code("113021", "DCM", "For Litigation"),
    Code("113030", "DCM", "Manifest"),
    Code("113031", "DCM", "Signed Manifest"),
    Code("113032", "DCM", "Complete Study Content"),
    Code("113033", "DCM", "Signed Complete Study Content"),
    Code("113034", "DCM", "Complete Acquisition Content"),
    Code("113035", "DCM", "Signed Complete Acquisition Content"),
    Code("113036", "DCM", "Group of Frames for Display"),
    Code("113037", "DCM", "Rejected for Patient Safety Reasons"),
    Code("113038", "DCM", "Incorrect Modality Worklist Entry"),
    Code("113039", "DCM", "Data Retention Policy Expired"),
)


@dataclass
class KeyObjectSelection:
    """A set of key images with a title and an optional comment (TID 2010).

    *images* keeps the reader's order; a multi-frame image flagged on some
    frames lists them in :attr:`ImageRef.frames`. *presentation_states*
    optionally names a GSPS to show each image with (same order as
    *images*, None where there is none). *creator* is the person who chose
    the images (the Person Observer Name of TID 1002), empty when unknown.
    """

    images: list[ImageRef] = field(default_factory=list)
    title: Code = KEY_OBJECT_TITLES[0]
    text: str = ""
    presentation_states: list[ImageRef | None] = field(default_factory=list)
    creator: str = ""


# -- Plain data for the client link ------------------------------------------
#
# The client sends states and selections to the core as JSON; these turn the
# model into dicts of built-in types and back. Unknown keys are an error so
# that a client and core of different versions fail loudly, not silently.


def _ref_to_dict(ref: ImageRef) -> dict[str, Any]:
    return {
        "SOPClassUID": ref.SOPClassUID,
        "SOPInstanceUID": ref.SOPInstanceUID,
        "SeriesInstanceUID": ref.SeriesInstanceUID,
        "frames": list(ref.frames),
    }


def _ref_from_dict(data: dict[str, Any]) -> ImageRef:
    return ImageRef(
        str(data["SOPClassUID"]),
        str(data["SOPInstanceUID"]),
        str(data.get("SeriesInstanceUID", "")),
        tuple(int(f) for f in data.get("frames", ())),
    )


def _refs(items: Any) -> tuple[ImageRef, ...]:
    return tuple(_ref_from_dict(item) for item in items or ())


def _point(value: Any) -> Point:
    x, y = value
    return float(x), float(y)


def _lut_to_dict(lut: LookupTable | None) -> dict[str, Any] | None:
    if lut is None:
        return None
    return {
        "first_mapped": lut.first_mapped,
        "bits": lut.bits,
        "data": list(lut.data),
        "explanation": lut.explanation,
    }


def _lut_from_dict(data: dict[str, Any] | None) -> LookupTable | None:
    if data is None:
        return None
    return LookupTable(
        int(data["first_mapped"]),
        int(data["bits"]),
        tuple(int(v) for v in data["data"]),
        str(data.get("explanation", "")),
    )


def _window_to_dict(window: Window | None) -> dict[str, float] | None:
    return None if window is None else {"center": window.center, "width": window.width}


def _window_from_dict(data: dict[str, Any] | None) -> Window | None:
    return None if data is None else Window(float(data["center"]), float(data["width"]))


def state_to_dict(state: PresentationState) -> dict[str, Any]:
    """*state* as JSON-ready built-in types (see :func:`state_from_dict`)."""
    modality = state.modality
    shutter = state.shutter
    return {
        "images": [_ref_to_dict(r) for r in state.images],
        "label": state.label,
        "description": state.description,
        "creator": state.creator,
        "modality": None
        if modality is None
        else {
            "slope": modality.slope,
            "intercept": modality.intercept,
            "type": modality.type,
            "lut": _lut_to_dict(modality.lut),
        },
        "voi": [
            {
                "images": [_ref_to_dict(r) for r in v.images],
                "window": _window_to_dict(v.window),
                "function": v.function,
                "explanation": v.explanation,
                "lut": _lut_to_dict(v.lut),
            }
            for v in state.voi
        ],
        "presentation_shape": state.presentation_shape,
        "presentation_lut": _lut_to_dict(state.presentation_lut),
        "rotation": state.rotation,
        "flip": state.flip,
        "displayed_areas": [
            {
                "top_left": list(a.top_left),
                "bottom_right": list(a.bottom_right),
                "size_mode": a.size_mode.value,
                "pixel_spacing": None
                if a.pixel_spacing is None
                else list(a.pixel_spacing),
                "aspect_ratio": None
                if a.aspect_ratio is None
                else list(a.aspect_ratio),
                "magnification": a.magnification,
                "images": [_ref_to_dict(r) for r in a.images],
            }
            for a in state.displayed_areas
        ],
        "shutter": None
        if shutter is None
        else {
            "rectangle": None if shutter.rectangle is None else list(shutter.rectangle),
            "circle": None
            if shutter.circle is None
            else [list(shutter.circle[0]), shutter.circle[1]],
            "polygon": None
            if shutter.polygon is None
            else [list(p) for p in shutter.polygon],
            "value": shutter.value,
        },
        "layers": [
            {
                "name": layer.name,
                "order": layer.order,
                "grey": layer.grey,
                "rgb": None if layer.rgb is None else list(layer.rgb),
                "description": layer.description,
            }
            for layer in state.layers
        ],
        "annotations": [
            {
                "layer": a.layer,
                "images": [_ref_to_dict(r) for r in a.images],
                "graphics": [
                    {
                        "type": g.type.value,
                        "points": [list(p) for p in g.points],
                        "filled": g.filled,
                    }
                    for g in a.graphics
                ],
                "texts": [
                    {
                        "text": t.text,
                        "anchor": None if t.anchor is None else list(t.anchor),
                        "box": None if t.box is None else [list(p) for p in t.box],
                        "anchor_visible": t.anchor_visible,
                        "justification": t.justification,
                    }
                    for t in a.texts
                ],
            }
            for a in state.annotations
        ],
    }


def state_from_dict(data: dict[str, Any]) -> PresentationState:
    """The :class:`PresentationState` of :func:`state_to_dict`'s output.

    Raises
    ------
    ValueError
        When a value has the wrong shape or an unknown Defined Term; the
        message names it.
    """
    try:
        modality = data.get("modality")
        shutter = data.get("shutter")
        return PresentationState(
            images=list(_refs(data.get("images"))),
            label=str(data.get("label", "UNNAMED")),
            description=str(data.get("description", "")),
            creator=str(data.get("creator", "")),
            modality=None
            if modality is None
            else ModalityTransform(
                float(modality.get("slope", 1.0)),
                float(modality.get("intercept", 0.0)),
                str(modality.get("type", "US")),
                _lut_from_dict(modality.get("lut")),
            ),
            voi=[
                VoiSetting(
                    _refs(v.get("images")),
                    _window_from_dict(v.get("window")),
                    str(v.get("function", "LINEAR")),
                    str(v.get("explanation", "")),
                    _lut_from_dict(v.get("lut")),
                )
                for v in data.get("voi", ())
            ],
            presentation_shape=str(data.get("presentation_shape", "IDENTITY")),
            presentation_lut=_lut_from_dict(data.get("presentation_lut")),
            rotation=int(data.get("rotation", 0)),
            flip=bool(data.get("flip", False)),
            displayed_areas=[
                DisplayedArea(
                    (int(a["top_left"][0]), int(a["top_left"][1])),
                    (int(a["bottom_right"][0]), int(a["bottom_right"][1])),
                    PresentationSizeModeValues(a.get("size_mode", "SCALE TO FIT")),
                    None
                    if a.get("pixel_spacing") is None
                    else _point(a["pixel_spacing"]),
                    None
                    if a.get("aspect_ratio") is None
                    else (int(a["aspect_ratio"][0]), int(a["aspect_ratio"][1])),
                    None
                    if a.get("magnification") is None
                    else float(a["magnification"]),
                    _refs(a.get("images")),
                )
                for a in data.get("displayed_areas", ())
            ],
            shutter=None
            if shutter is None
            else Shutter(
                None
                if shutter.get("rectangle") is None
                else tuple(int(v) for v in shutter["rectangle"]),  # type: ignore[arg-type]
                None
                if shutter.get("circle") is None
                else (
                    (int(shutter["circle"][0][0]), int(shutter["circle"][0][1])),
                    int(shutter["circle"][1]),
                ),
                None
                if shutter.get("polygon") is None
                else tuple((int(p[0]), int(p[1])) for p in shutter["polygon"]),
                int(shutter.get("value", 0)),
            ),
            layers=[
                GraphicLayer(
                    str(layer["name"]),
                    int(layer["order"]),
                    None if layer.get("grey") is None else int(layer["grey"]),
                    None
                    if layer.get("rgb") is None
                    else (
                        int(layer["rgb"][0]),
                        int(layer["rgb"][1]),
                        int(layer["rgb"][2]),
                    ),
                    str(layer.get("description", "")),
                )
                for layer in data.get("layers", ())
            ],
            annotations=[
                Annotation(
                    str(a["layer"]),
                    _refs(a.get("images")),
                    [
                        Graphic(
                            GraphicTypeValues(g["type"]),
                            tuple(_point(p) for p in g["points"]),
                            bool(g.get("filled", False)),
                        )
                        for g in a.get("graphics", ())
                    ],
                    [
                        TextLabel(
                            str(t["text"]),
                            None if t.get("anchor") is None else _point(t["anchor"]),
                            None
                            if t.get("box") is None
                            else (_point(t["box"][0]), _point(t["box"][1])),
                            bool(t.get("anchor_visible", True)),
                            str(t.get("justification", "LEFT")),
                        )
                        for t in a.get("texts", ())
                    ],
                )
                for a in data.get("annotations", ())
            ],
        )
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"malformed presentation state: {exc!r}") from exc


def selection_to_dict(selection: KeyObjectSelection) -> dict[str, Any]:
    """*selection* as JSON-ready built-in types."""
    return {
        "images": [_ref_to_dict(r) for r in selection.images],
        "title": [
            selection.title.value,
            selection.title.scheme,
            selection.title.meaning,
        ],
        "text": selection.text,
        "presentation_states": [
            None if r is None else _ref_to_dict(r)
            for r in selection.presentation_states
        ],
        "creator": selection.creator,
    }


def selection_from_dict(data: dict[str, Any]) -> KeyObjectSelection:
    """The :class:`KeyObjectSelection` of :func:`selection_to_dict`'s output.

    The title must be one of CID 7010 (:data:`KEY_OBJECT_TITLES`).
    """
    try:
        value, scheme, meaning = data.get("title") or (
            KEY_OBJECT_TITLES[0].value,
            KEY_OBJECT_TITLES[0].scheme,
            KEY_OBJECT_TITLES[0].meaning,
        )
        title = Code(str(value), str(scheme), str(meaning))
        if title not in KEY_OBJECT_TITLES:
            raise ValueError(
                f"key object title {title.value!r} ({title.meaning!r}) is not "
                "one of CID 7010"
            )
        return KeyObjectSelection(
            images=list(_refs(data.get("images"))),
            title=title,
            text=str(data.get("text", "")),
            presentation_states=[
                None if r is None else _ref_from_dict(r)
                for r in data.get("presentation_states", ())
            ],
            creator=str(data.get("creator", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed key object selection: {exc!r}") from exc
