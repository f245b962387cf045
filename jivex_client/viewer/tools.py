"""The mouse tools: what a press, a move and a release draw, without Qt.

A :class:`Drawing` collects the points of one outline in image coordinates;
when it is complete the viewport turns it into an annotation or a shutter
(:func:`shutter_from`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from jivex_core.imaging.presentation import Point, Shutter


class ToolValues(StrEnum):
    """What the left mouse button does."""

    POINTER = "POINTER"  # select annotations; drag pans
    WINDOW = "WINDOW"
    PAN = "PAN"
    ZOOM = "ZOOM"
    DISTANCE = "DISTANCE"
    ANGLE = "ANGLE"
    RECTANGLE = "RECTANGLE"
    ELLIPSE = "ELLIPSE"
    POLYGON = "POLYGON"
    ARROW = "ARROW"
    TEXT = "TEXT"
    SHUTTER_RECTANGLE = "SHUTTER_RECTANGLE"
    SHUTTER_CIRCLE = "SHUTTER_CIRCLE"
    SHUTTER_POLYGON = "SHUTTER_POLYGON"


#: Tools drawn by dragging from one point to another.
DRAG_TOOLS = frozenset(
    {
        ToolValues.DISTANCE,
        ToolValues.RECTANGLE,
        ToolValues.ELLIPSE,
        ToolValues.ARROW,
        ToolValues.SHUTTER_RECTANGLE,
        ToolValues.SHUTTER_CIRCLE,
    }
)
#: Tools drawn by clicking vertices (a drag also lays the first segment).
CLICK_TOOLS = frozenset(
    {ToolValues.ANGLE, ToolValues.POLYGON, ToolValues.SHUTTER_POLYGON}
)
DRAWING_TOOLS = DRAG_TOOLS | CLICK_TOOLS | {ToolValues.TEXT}
SHUTTER_TOOLS = frozenset(
    {
        ToolValues.SHUTTER_RECTANGLE,
        ToolValues.SHUTTER_CIRCLE,
        ToolValues.SHUTTER_POLYGON,
    }
)


@dataclass
class Drawing:
    """One outline being drawn.

    *tolerance* is in image pixels: a drag shorter than it is a click, and a
    click that close to the first vertex closes a polygon.
    """

    tool: ToolValues
    tolerance: float = 3.0
    points: list[Point] = field(default_factory=list)
    cursor: Point | None = None
    finished: bool = False

    def _far(self, a: Point, b: Point) -> bool:
        return math.hypot(a[0] - b[0], a[1] - b[1]) > self.tolerance

    def press(self, point: Point) -> None:
        """The button went down at *point*."""
        if self.finished:
            return
        if (
            self.tool in CLICK_TOOLS
            and len(self.points) >= 3
            and not self._far(point, self.points[0])
        ):
            if self.tool != ToolValues.ANGLE:
                self.finished = True
                return
        if self.tool == ToolValues.TEXT:
            self.points = [point]
            self.finished = True
            return
        self.points.append(point)
        self.cursor = point
        if self.tool == ToolValues.ANGLE and len(self.points) == 3:
            self.finished = True

    def move(self, point: Point) -> None:
        """The mouse moved (button down or not)."""
        self.cursor = point

    def release(self, point: Point) -> None:
        """The button came up at *point*."""
        if self.finished or not self.points:
            return
        self.cursor = point
        if self.tool in DRAG_TOOLS:
            if self._far(point, self.points[0]):
                self.points = [self.points[0], point]
                self.finished = True
            else:
                self.points = []  # a click: nothing drawn
            return
        if self.tool in CLICK_TOOLS and self._far(point, self.points[-1]):
            # A drag lays a segment: the release is a vertex too.
            self.points.append(point)
            if self.tool == ToolValues.ANGLE and len(self.points) == 3:
                self.finished = True

    def close(self) -> bool:
        """Finish a polygon (double click, Enter); True when it has 3 points."""
        if self.tool in (ToolValues.POLYGON, ToolValues.SHUTTER_POLYGON):
            # A double click adds the same vertex twice: drop duplicates.
            unique: list[Point] = []
            for p in self.points:
                if not unique or self._far(p, unique[-1]):
                    unique.append(p)
            self.points = unique
            if len(unique) >= 3:
                self.finished = True
        return self.finished

    def preview(self) -> list[Point]:
        """The points to draw now: the fixed ones and the cursor."""
        if self.finished or self.cursor is None:
            return list(self.points)
        if self.tool in DRAG_TOOLS:
            return [self.points[0], self.cursor] if self.points else []
        return [*self.points, self.cursor]


def shutter_from(
    tool: ToolValues, points: list[Point], size: tuple[int, int], old: Shutter | None
) -> Shutter:
    """The shutter after drawing *points* with a shutter *tool*.

    The new shape replaces the shape of its kind and keeps the others
    (PS3.3 C.7.6.11: the shapes given all apply). Positions become 1-based
    pixel positions clipped to the image of *size* (columns, rows).
    """
    columns, rows = size
    shutter = (
        Shutter()
        if old is None
        else Shutter(old.rectangle, old.circle, old.polygon, old.value)
    )

    def column(x: float) -> int:
        return min(max(math.floor(x) + 1, 1), columns)

    def row(y: float) -> int:
        return min(max(math.floor(y) + 1, 1), rows)

    if tool == ToolValues.SHUTTER_RECTANGLE:
        (x0, y0), (x1, y1) = points[0], points[-1]
        left = min(max(round(min(x0, x1)) + 1, 1), columns)
        right = min(max(round(max(x0, x1)), left), columns)
        upper = min(max(round(min(y0, y1)) + 1, 1), rows)
        lower = min(max(round(max(y0, y1)), upper), rows)
        shutter.rectangle = (left, right, upper, lower)
    elif tool == ToolValues.SHUTTER_CIRCLE:
        (cx, cy), (px, py) = points[0], points[-1]
        radius = max(round(math.hypot(px - cx, py - cy)), 1)
        shutter.circle = ((column(cx), row(cy)), radius)
    elif tool == ToolValues.SHUTTER_POLYGON:
        # Implicitly closed: the origin vertex is not repeated (PS3.3
        # C.7.6.11.1.1, Vertices of the Polygonal Shutter).
        vertices = [(column(x), row(y)) for x, y in points]
        if len(vertices) > 1 and vertices[0] == vertices[-1]:
            vertices.pop()
        shutter.polygon = tuple(vertices)
    else:
        raise ValueError(f"{tool} is not a shutter tool")
    return shutter
