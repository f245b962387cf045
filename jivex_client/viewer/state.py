"""Display logic of the viewer, free of Qt so that tests drive it directly."""

from __future__ import annotations

from dataclasses import dataclass

from jivex_core.imaging.render import Window


@dataclass
class StackState:
    """Which image of a series is shown."""

    count: int
    index: int = 0

    def step(self, delta: int) -> bool:
        """Move by *delta* images, stopping at the ends; True when it moved."""
        new = min(max(self.index + delta, 0), max(self.count - 1, 0))
        moved = new != self.index
        self.index = new
        return moved

    def label(self) -> str:
        """The slice overlay text, 1-based: ``Im: 3/20``."""
        return f"Im: {self.index + 1}/{self.count}" if self.count else "Im: -"


@dataclass
class WindowLevelState:
    """The window the user set, shared by every image of the series.

    Until the user drags, each image shows its own default window
    (:attr:`user` is None).
    """

    user: Window | None = None
    #: Modality units per mouse pixel; set from the image's value range.
    sensitivity: float = 1.0

    def effective(self, default: Window | None) -> Window | None:
        """The window to render with: the user's, else the image's."""
        return self.user or default

    def drag(self, dx: float, dy: float, start: Window) -> Window:
        """Set the window from a drag of (*dx*, *dy*) pixels begun at *start*.

        Right is wider, left narrower; down raises the center (darker),
        up lowers it. The width never goes below 1 (PS3.3 C.11.2.1.2).
        """
        width = max(1.0, start.width + dx * self.sensitivity)
        center = start.center + dy * self.sensitivity
        self.user = Window(round(center, 2), round(width, 2))
        return self.user

    def reset(self) -> None:
        """Go back to each image's own window."""
        self.user = None

    @staticmethod
    def label(window: Window | None) -> str:
        """The window overlay text: ``W: 400 L: 40``."""
        if window is None:
            return ""
        return f"W: {window.width:.0f} L: {window.center:.0f}"


@dataclass
class ViewTransform:
    """Zoom and pan of an image fitted into a viewport.

    The image is first fitted (aspect kept, centred); :attr:`zoom`
    multiplies that scale and :attr:`pan` moves the image in viewport pixels.
    """

    zoom: float = 1.0
    pan_x: float = 0.0
    pan_y: float = 0.0

    MIN_ZOOM = 0.1
    MAX_ZOOM = 40.0

    def scale(self, image: tuple[int, int], view: tuple[int, int]) -> float:
        """Viewport pixels per image pixel; sizes are (width, height)."""
        iw, ih = image
        vw, vh = view
        if iw <= 0 or ih <= 0:
            return 1.0
        return min(vw / iw, vh / ih) * self.zoom

    def rect(
        self, image: tuple[int, int], view: tuple[int, int]
    ) -> tuple[float, float, float, float]:
        """Where the image is drawn: (x, y, width, height) in the viewport."""
        s = self.scale(image, view)
        w, h = image[0] * s, image[1] * s
        x = (view[0] - w) / 2 + self.pan_x
        y = (view[1] - h) / 2 + self.pan_y
        return x, y, w, h

    def to_image(
        self, point: tuple[float, float], image: tuple[int, int], view: tuple[int, int]
    ) -> tuple[float, float]:
        """Image coordinates of a viewport point."""
        x, y, _w, _h = self.rect(image, view)
        s = self.scale(image, view)
        return (point[0] - x) / s, (point[1] - y) / s

    def zoom_at(
        self,
        factor: float,
        point: tuple[float, float],
        image: tuple[int, int],
        view: tuple[int, int],
    ) -> None:
        """Zoom by *factor*, keeping the image point under *point* in place."""
        before = self.to_image(point, image, view)
        self.zoom = min(max(self.zoom * factor, self.MIN_ZOOM), self.MAX_ZOOM)
        x, y, _w, _h = self.rect(image, view)
        s = self.scale(image, view)
        self.pan_x += point[0] - (x + before[0] * s)
        self.pan_y += point[1] - (y + before[1] * s)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by (*dx*, *dy*) viewport pixels."""
        self.pan_x += dx
        self.pan_y += dy

    def reset(self) -> None:
        """Fit the image again."""
        self.zoom, self.pan_x, self.pan_y = 1.0, 0.0, 0.0
