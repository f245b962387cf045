"""Display logic of the viewer, free of Qt so that tests drive it directly."""

from __future__ import annotations

from dataclasses import dataclass, field

from jivex_core.imaging.presentation import ImageRef
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

    def advance(self) -> int:
        """The next image for cine, back to the first after the last."""
        if self.count:
            self.index = (self.index + 1) % self.count
        return self.index

    def label(self) -> str:
        """The slice overlay text, 1-based: ``Im: 3/20``."""
        return f"Im: {self.index + 1}/{self.count}" if self.count else "Im: -"


def window_drag(start: Window, dx: float, dy: float, sensitivity: float) -> Window:
    """The window after a drag of (*dx*, *dy*) screen pixels begun at *start*.

    Right is wider, left narrower; down raises the center (darker), up lowers
    it. *sensitivity* is modality units per pixel. The width never goes below
    1 (PS3.3 C.11.2.1.2).
    """
    width = max(1.0, start.width + dx * sensitivity)
    center = start.center + dy * sensitivity
    return Window(round(center, 2), round(width, 2))


def drag_sensitivity(window: Window | None) -> float:
    """Modality units per pixel of drag: about a quarter of the window per
    100 pixels, which feels the same on CT and MR."""
    return max(window.width / 400, 0.1) if window is not None else 1.0


def window_label(window: Window | None) -> str:
    """The window overlay text: ``W: 400 L: 40``."""
    if window is None:
        return ""
    return f"W: {window.width:.0f} L: {window.center:.0f}"


@dataclass
class KeyImages:
    """The images a reader flagged, in the order flagged.

    One :class:`ImageRef` per image; frames of a multi-frame image collect
    in its :attr:`ImageRef.frames` (1-based). The references become a Key
    Object Selection document as they are.
    """

    images: list[ImageRef] = field(default_factory=list)

    def contains(self, sop_instance_uid: str, frame: int = 1) -> bool:
        """Whether a frame (1-based) of an image is flagged."""
        return any(ref.covers(sop_instance_uid, frame) for ref in self.images)

    def toggle(self, ref: ImageRef, frame: int | None = None) -> bool:
        """Flag or unflag an image (*frame* for one frame of a multi-frame
        image); True when it is flagged afterwards."""
        for i, old in enumerate(self.images):
            if old.SOPInstanceUID != ref.SOPInstanceUID:
                continue
            if frame is None:
                del self.images[i]
                return False
            frames = set(old.frames)
            if frame in frames:
                frames.discard(frame)
                if frames:
                    self.images[i] = ImageRef(
                        old.SOPClassUID,
                        old.SOPInstanceUID,
                        old.SeriesInstanceUID,
                        tuple(sorted(frames)),
                    )
                else:
                    del self.images[i]
                return False
            self.images[i] = ImageRef(
                old.SOPClassUID,
                old.SOPInstanceUID,
                old.SeriesInstanceUID,
                tuple(sorted(frames | {frame})),
            )
            return True
        frames = () if frame is None else (frame,)
        self.images.append(
            ImageRef(ref.SOPClassUID, ref.SOPInstanceUID, ref.SeriesInstanceUID, frames)
        )
        return True

    def clear(self) -> None:
        """Forget every flag (after saving them)."""
        self.images.clear()


@dataclass(frozen=True)
class GridLayout:
    """A layout of *rows* by *columns* viewports, 1 to 4 each way."""

    rows: int = 1
    columns: int = 1

    MAX = 4

    def __post_init__(self) -> None:
        if not (1 <= self.rows <= self.MAX and 1 <= self.columns <= self.MAX):
            raise ValueError(
                f"layout {self.rows}x{self.columns}: rows and columns must be "
                f"1 to {self.MAX}"
            )

    @property
    def count(self) -> int:
        """Number of viewports."""
        return self.rows * self.columns

    def position(self, index: int) -> tuple[int, int]:
        """(row, column) of viewport *index*, row by row."""
        return divmod(index, self.columns)

    @classmethod
    def parse(cls, text: str) -> GridLayout:
        """``"2x3"`` (or with a multiplication sign) to a layout."""
        rows, _, columns = text.lower().replace("×", "x").partition("x")
        try:
            return cls(int(rows), int(columns))
        except ValueError as exc:
            raise ValueError(f"'{text}' is not a layout like 2x3: {exc}") from exc
