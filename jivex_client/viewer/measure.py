"""Measurement maths: lengths, angles, regions and their statistics.

Plain numpy on image coordinates (``(x, y)`` = (column, row), ``(0, 0)`` the
top left corner of the first pixel, as in
:mod:`jivex_core.imaging.presentation`). Lengths and areas are in mm when
the object gives a pixel spacing, else in pixels; the caller says which on
screen with :attr:`Spacing.note`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from jivex_core.imaging.presentation import (
    Annotation,
    Graphic,
    GraphicTypeValues,
    ImageRef,
    Point,
    TextLabel,
)


class SpacingSourceValues(StrEnum):
    """Where a pixel spacing comes from."""

    PIXEL_SPACING = "PixelSpacing"
    IMAGER_PIXEL_SPACING = "ImagerPixelSpacing"
    NONE = ""


@dataclass(frozen=True)
class Spacing:
    """The physical size of a pixel.

    Attributes
    ----------
    row, column : float
        mm between the centres of adjacent rows, and of adjacent columns
        (1.0 and 1.0 when there is no spacing: lengths are in pixels).
    source : SpacingSourceValues
        Pixel Spacing (0028,0030) measures in the patient (PS3.3
        C.7.6.2.1.1); Imager Pixel Spacing (0018,1164) at the detector, so
        that projection radiographs measure the magnified object (PS3.3
        C.8.11.4.1.1).
    """

    row: float = 1.0
    column: float = 1.0
    source: SpacingSourceValues = SpacingSourceValues.NONE

    @property
    def calibrated(self) -> bool:
        """Whether lengths are in mm."""
        return self.source != SpacingSourceValues.NONE

    @property
    def unit(self) -> str:
        """``mm`` or ``px``."""
        return "mm" if self.calibrated else "px"

    @property
    def area_unit(self) -> str:
        """``mm²`` or ``px²``."""
        return "mm²" if self.calibrated else "px²"

    @property
    def note(self) -> str:
        """What the reader must know about lengths, or an empty string."""
        if self.source == SpacingSourceValues.IMAGER_PIXEL_SPACING:
            return "Imager Pixel Spacing: lengths at the detector"
        if self.source == SpacingSourceValues.NONE:
            return "No pixel spacing: lengths in pixels"
        return ""


def _pair(value: Any) -> tuple[float, float] | None:
    try:
        row, column = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(row) and math.isfinite(column)) or row <= 0 or column <= 0:
        return None
    return row, column


def _functional(ds: Dataset, frame: int, group: str, keyword: str) -> Any:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and 0 <= frame < len(per_frame):
        seq = per_frame[frame].get(group)
        if seq and keyword in seq[0]:
            return seq[0].get(keyword)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(group)
        if seq and keyword in seq[0]:
            return seq[0].get(keyword)
    return None


def pixel_spacing(ds: Dataset, frame: int = 0) -> Spacing:
    """The spacing to measure frame *frame* (0-based) of *ds* with.

    Pixel Spacing, from the frame's functional groups or the top level,
    wins; else Imager Pixel Spacing (corrected by Estimated Radiographic
    Magnification Factor when given, PS3.3 C.8.11.7); else none.
    """
    for value in (
        _functional(ds, frame, "PixelMeasuresSequence", "PixelSpacing"),
        ds.get("PixelSpacing"),
    ):
        pair = _pair(value)
        if pair is not None:
            return Spacing(pair[0], pair[1], SpacingSourceValues.PIXEL_SPACING)
    pair = _pair(ds.get("ImagerPixelSpacing"))
    if pair is not None:
        return Spacing(pair[0], pair[1], SpacingSourceValues.IMAGER_PIXEL_SPACING)
    return Spacing()


def modality_units(ds: Dataset) -> str:
    """Units of the modality values: ``HU`` for CT, else Rescale Type.

    PS3.3 C.11.1.1.2: a CT image's rescaled values are Hounsfield units;
    other objects may say what theirs are in Rescale Type (0028,1054).
    """
    kind = str(ds.get("RescaleType") or "").strip()
    if kind and kind != "US":
        return kind
    if str(ds.get("Modality") or "") == "CT":
        return "HU"
    return ""


# -- lengths and angles --------------------------------------------------------


def distance(p: Point, q: Point, spacing: Spacing) -> float:
    """Length of the segment from *p* to *q* in mm (or pixels without spacing)."""
    dx = (q[0] - p[0]) * spacing.column
    dy = (q[1] - p[1]) * spacing.row
    return math.hypot(dx, dy)


def angle(p: Point, vertex: Point, q: Point, spacing: Spacing) -> float:
    """The angle at *vertex* between the arms to *p* and *q*, in degrees.

    Computed in mm, so that non-square pixels measure the real angle.
    """
    ax = (p[0] - vertex[0]) * spacing.column
    ay = (p[1] - vertex[1]) * spacing.row
    bx = (q[0] - vertex[0]) * spacing.column
    by = (q[1] - vertex[1]) * spacing.row
    if (ax == 0 and ay == 0) or (bx == 0 and by == 0):
        return 0.0
    return math.degrees(abs(math.atan2(ax * by - ay * bx, ax * bx + ay * by)))


def polygon_area(points: tuple[Point, ...] | list[Point], spacing: Spacing) -> float:
    """Area of a simple polygon (shoelace formula) in mm² (or pixels²)."""
    pts = list(points)
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(pts) < 3:
        return 0.0
    total = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2 * spacing.row * spacing.column


# -- regions -------------------------------------------------------------------


class RoiShapeValues(StrEnum):
    """The region tools."""

    RECTANGLE = "RECTANGLE"
    ELLIPSE = "ELLIPSE"
    POLYGON = "POLYGON"


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the modality values inside a region.

    *sd* is the sample standard deviation (n - 1); *count* the number of
    pixels whose centre lies inside; *area* is geometric (the shape's, not
    the pixels' count), in :attr:`Spacing.area_unit`.
    """

    mean: float
    sd: float
    minimum: float
    maximum: float
    count: int
    area: float


def rectangle_points(a: Point, b: Point) -> tuple[Point, ...]:
    """A closed POLYLINE for the rectangle with opposite corners *a*, *b*."""
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))


def ellipse_points(a: Point, b: Point) -> tuple[Point, ...]:
    """The ELLIPSE of the box from *a* to *b*: major axis ends, then minor axis ends
    (PS3.3 C.10.5.1.2)."""
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    horizontal = ((x0, cy), (x1, cy))
    vertical = ((cx, y0), (cx, y1))
    if (x1 - x0) >= (y1 - y0):
        return (*horizontal, *vertical)
    return (*vertical, *horizontal)


def _ellipse_axes(points: tuple[Point, ...]) -> tuple[Point, float, float, float]:
    """Centre, semi-axes (a along the major axis, b) and the major axis angle."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points[:4]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a = math.hypot(x1 - x0, y1 - y0) / 2
    b = math.hypot(x3 - x2, y3 - y2) / 2
    theta = math.atan2(y1 - y0, x1 - x0)
    return (cx, cy), a, b, theta


def region_mask(
    shape: RoiShapeValues, points: tuple[Point, ...], size: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """The pixels whose centre lies inside a region.

    Parameters
    ----------
    shape : RoiShapeValues
    points : tuple of Point
        RECTANGLE: two opposite corners or the closed polyline; ELLIPSE: the
        four axis ends; POLYGON: the vertices (closed or not).
    size : (columns, rows)
        The image.

    Returns
    -------
    mask, (x0, y0)
        A boolean array over the bounding box clipped to the image, and the
        box's top left pixel.
    """
    columns, rows = size
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    if shape == RoiShapeValues.ELLIPSE:
        (cx, cy), a, b, _theta = _ellipse_axes(points)
        r = max(a, b)
        xs, ys = [cx - r, cx + r], [cy - r, cy + r]
    x0 = max(math.floor(min(xs)), 0)
    x1 = min(math.ceil(max(xs)), columns)
    y0 = max(math.floor(min(ys)), 0)
    y1 = min(math.ceil(max(ys)), rows)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), dtype=bool), (x0, y0)
    px = np.arange(x0, x1, dtype=np.float64) + 0.5
    py = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
    if shape == RoiShapeValues.RECTANGLE:
        mask = (px >= min(xs)) & (px <= max(xs)) & (py >= min(ys)) & (py <= max(ys))
    elif shape == RoiShapeValues.ELLIPSE:
        (cx, cy), a, b, theta = _ellipse_axes(points)
        if a <= 0 or b <= 0:
            return np.zeros((y1 - y0, x1 - x0), dtype=bool), (x0, y0)
        cos, sin = math.cos(theta), math.sin(theta)
        u = (px - cx) * cos + (py - cy) * sin
        v = -(px - cx) * sin + (py - cy) * cos
        mask = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    else:
        pts = list(points)
        if len(pts) > 1 and pts[0] == pts[-1]:
            pts = pts[:-1]
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        # Even-odd rule: a ray to the right crosses the edges an odd number
        # of times from inside.
        for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1], strict=True):
            if ay == by:
                continue
            crosses = (py >= min(ay, by)) & (py < max(ay, by))
            x_at = ax + (py - ay) * (bx - ax) / (by - ay)
            mask ^= crosses & (px < x_at)
    mask = np.broadcast_to(mask, (y1 - y0, x1 - x0))
    return np.ascontiguousarray(mask), (x0, y0)


def region_area(
    shape: RoiShapeValues, points: tuple[Point, ...], spacing: Spacing
) -> float:
    """Geometric area of a region, in mm² (or pixels²)."""
    if shape == RoiShapeValues.ELLIPSE:
        _c, a, b, _theta = _ellipse_axes(points)
        # The spacing is a linear map: areas scale by its determinant.
        return math.pi * a * b * spacing.row * spacing.column
    if shape == RoiShapeValues.RECTANGLE and len(points) == 2:
        points = rectangle_points(points[0], points[1])
    return polygon_area(points, spacing)


def region_stats(
    values: np.ndarray,
    shape: RoiShapeValues,
    points: tuple[Point, ...],
    spacing: Spacing,
) -> RoiStats | None:
    """Statistics of the modality *values* (rows, columns) inside a region.

    None when no pixel centre lies inside, or for colour images (three
    samples per pixel have no single modality value).
    """
    if values.ndim != 2:
        return None
    rows, columns = values.shape
    mask, (x0, y0) = region_mask(shape, points, (columns, rows))
    if mask.size == 0 or not mask.any():
        return None
    box = values[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
    inside = box[mask].astype(np.float64)
    count = int(inside.size)
    return RoiStats(
        mean=float(inside.mean()),
        sd=float(inside.std(ddof=1)) if count > 1 else 0.0,
        minimum=float(inside.min()),
        maximum=float(inside.max()),
        count=count,
        area=region_area(shape, points, spacing),
    )


# -- what a finished tool leaves behind ---------------------------------------

#: Layers of the viewer's annotations (names as written to the GSPS).
MEASUREMENT_LAYER = "MEASUREMENTS"
ANNOTATION_LAYER = "ANNOTATIONS"


def _number(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


def length_text(value: float, spacing: Spacing) -> str:
    """``23.4 mm`` (or ``px``)."""
    return f"{_number(value)} {spacing.unit}"


def stats_text(stats: RoiStats, units: str, spacing: Spacing) -> str:
    """The label of a region: mean ± SD, min/max and area."""
    unit = f" {units}" if units else ""
    return (
        f"Mean {_number(stats.mean)}{unit} SD {_number(stats.sd)}\n"
        f"Min {_number(stats.minimum)} Max {_number(stats.maximum)}\n"
        f"Area {_number(stats.area)} {spacing.area_unit}"
    )


def _label_at(points: tuple[Point, ...], offset: float) -> Point:
    x = max(p[0] for p in points) + offset
    y = min(p[1] for p in points)
    return (x, y)


def distance_annotation(
    p: Point, q: Point, spacing: Spacing, image: ImageRef, offset: float = 4.0
) -> Annotation:
    """A distance: a two-point POLYLINE and its length as a text label."""
    text = length_text(distance(p, q, spacing), spacing)
    return Annotation(
        MEASUREMENT_LAYER,
        (image,),
        [Graphic(GraphicTypeValues.POLYLINE, (p, q))],
        [TextLabel(text, anchor=_label_at((p, q), offset), anchor_visible=False)],
    )


def angle_annotation(
    p: Point, vertex: Point, q: Point, spacing: Spacing, image: ImageRef
) -> Annotation:
    """An angle: a three-point POLYLINE through the vertex and its value."""
    text = f"{angle(p, vertex, q, spacing):.1f}°"
    return Annotation(
        MEASUREMENT_LAYER,
        (image,),
        [Graphic(GraphicTypeValues.POLYLINE, (p, vertex, q))],
        [TextLabel(text, anchor=(vertex[0] + 4.0, vertex[1]), anchor_visible=False)],
    )


def region_annotation(
    shape: RoiShapeValues,
    points: tuple[Point, ...],
    values: np.ndarray | None,
    spacing: Spacing,
    units: str,
    image: ImageRef,
) -> Annotation:
    """A region and its statistics.

    Rectangles and polygons are closed POLYLINEs (first point repeated
    last), ellipses an ELLIPSE. Without values (colour) only the area is
    given.
    """
    if shape == RoiShapeValues.RECTANGLE:
        outline = (
            rectangle_points(points[0], points[-1]) if len(points) == 2 else points
        )
        graphic = Graphic(GraphicTypeValues.POLYLINE, outline)
    elif shape == RoiShapeValues.ELLIPSE:
        outline = points if len(points) == 4 else ellipse_points(points[0], points[1])
        graphic = Graphic(GraphicTypeValues.ELLIPSE, outline)
    else:
        outline = tuple(points)
        if outline[0] != outline[-1]:
            outline = (*outline, outline[0])
        graphic = Graphic(GraphicTypeValues.POLYLINE, outline)
    stats = (
        region_stats(values, shape, outline, spacing) if values is not None else None
    )
    if stats is not None:
        text = stats_text(stats, units, spacing)
    else:
        area = region_area(shape, outline, spacing)
        text = f"Area {_number(area)} {spacing.area_unit}"
    xs = [p[0] for p in outline]
    ys = [p[1] for p in outline]
    if shape == RoiShapeValues.ELLIPSE:
        (cx, cy), a, b, _t = _ellipse_axes(outline)
        r = max(a, b)
        xs, ys = [cx - r, cx + r], [cy - r, cy + r]
    anchor = (max(xs) + 4.0, min(ys))
    return Annotation(
        MEASUREMENT_LAYER,
        (image,),
        [graphic],
        [TextLabel(text, anchor=anchor, anchor_visible=False)],
    )


def arrow_points(tail: Point, tip: Point, head: float) -> tuple[Point, ...]:
    """One POLYLINE drawing an arrow: the shaft, then the two barbs at the tip.

    GSPS has no arrow graphic; a polyline shows as an arrow on any system.
    *head* is the barb length in image pixels.
    """
    dx, dy = tip[0] - tail[0], tip[1] - tail[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    barb = []
    for sign in (1, -1):
        angle_ = math.radians(150) * sign
        bx = ux * math.cos(angle_) - uy * math.sin(angle_)
        by = ux * math.sin(angle_) + uy * math.cos(angle_)
        barb.append((tip[0] + bx * head, tip[1] + by * head))
    return (tail, tip, barb[0], tip, barb[1])


def arrow_annotation(
    tail: Point, tip: Point, image: ImageRef, head: float = 8.0
) -> Annotation:
    """An arrow pointing at *tip*."""
    return Annotation(
        ANNOTATION_LAYER,
        (image,),
        [Graphic(GraphicTypeValues.POLYLINE, arrow_points(tail, tip, head))],
    )


def text_annotation(text: str, at: Point, image: ImageRef) -> Annotation:
    """A free text whose top left corner is at *at*."""
    return Annotation(
        ANNOTATION_LAYER,
        (image,),
        [],
        [TextLabel(text, anchor=at, anchor_visible=False)],
    )


# -- picking -------------------------------------------------------------------


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    if dx == 0 and dy == 0:
        return math.hypot(p[0] - a[0], p[1] - a[1])
    t = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)
    t = min(max(t, 0.0), 1.0)
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


def graphic_distance(point: Point, graphic: Graphic) -> float:
    """Distance in image pixels from *point* to the outline of *graphic*."""
    pts = graphic.points
    if graphic.type == GraphicTypeValues.POINT:
        return min(math.hypot(point[0] - p[0], point[1] - p[1]) for p in pts)
    if graphic.type == GraphicTypeValues.CIRCLE and len(pts) >= 2:
        r = math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1])
        return abs(math.hypot(point[0] - pts[0][0], point[1] - pts[0][1]) - r)
    if graphic.type == GraphicTypeValues.ELLIPSE and len(pts) >= 4:
        (cx, cy), a, b, theta = _ellipse_axes(pts)
        samples = [
            (
                cx
                + a * math.cos(t) * math.cos(theta)
                - b * math.sin(t) * math.sin(theta),
                cy
                + a * math.cos(t) * math.sin(theta)
                + b * math.sin(t) * math.cos(theta),
            )
            for t in np.linspace(0, 2 * math.pi, 73)
        ]
        return min(
            _segment_distance(point, samples[i], samples[i + 1])
            for i in range(len(samples) - 1)
        )
    if len(pts) == 1:
        return math.hypot(point[0] - pts[0][0], point[1] - pts[0][1])
    return min(
        _segment_distance(point, pts[i], pts[i + 1]) for i in range(len(pts) - 1)
    )


def pick(
    point: Point, annotations: list[Annotation], tolerance: float
) -> Annotation | None:
    """The annotation whose outline or text anchor is nearest *point*, within
    *tolerance* image pixels; None when none is that close."""
    best: tuple[float, Annotation] | None = None
    for annotation in annotations:
        distances = [graphic_distance(point, g) for g in annotation.graphics]
        for label in annotation.texts:
            if label.anchor is not None:
                distances.append(
                    math.hypot(point[0] - label.anchor[0], point[1] - label.anchor[1])
                )
        if distances:
            d = min(distances)
            if d <= tolerance and (best is None or d < best[0]):
                best = (d, annotation)
    return None if best is None else best[1]
