"""How fast the reading viewer opens, scrolls and windows a 500-slice CT.

What it measures (issue 5's targets in brackets)
-------------------------------------------------
The synthetic 500-slice 512x512 16-bit CT of ``bench_storage_scp.py`` is
imported into a data folder (not timed), a core is started as the
workstation starts it, and a :class:`~jivex_client.viewer.widget.StudyViewer`
of 1600x1000 is driven in this process, offscreen:

1. **Open**: from creating the viewer (what a double click in the browser
   does) to the first image painted: the link's series and instance lists,
   reading and decoding the first slice in a worker, rendering, painting.
   Median of several openings, each with a fresh viewer and frame cache
   (the files are in the operating system's cache, as on a workstation that
   just received them). [under 300 ms]
2. **Scroll, loading**: the wheel's path (``step(+1)``) through the series as
   fast as frames arrive, the loader reading ahead in the scroll direction:
   frames per second. No target; it tells how fast a cold series streams.
3. **Scroll, loaded**: the same sweep once every frame is in the bounded
   frame cache, each step painted before the next: frames per second.
   [60 or more]
4. **Window/level drag**: right-button mouse moves on the viewport, each
   repainted before the next: median and 95th percentile milliseconds per
   move. [under 16 ms]

Usage::

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_viewer.py

The machine is shared; absolute figures drift between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import qasync
from bench_storage_scp import JIVEX, free_port, generate_study
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from jivex_client.core_link import CoreLink
from jivex_client.viewer.widget import StudyViewer

SIZE = (1600, 1000)


def import_study(files: list[Path], root: Path) -> tuple[Path, Path]:
    """A data folder holding *files* and a settings file on free ports."""
    data = root / "data"
    config = root / "jivex.toml"
    config.write_text(
        "[network]\n"
        'bind_address = "127.0.0.1"\n'
        f"storage_port = {free_port()}\n"
        f"query_port = {free_port()}\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [str(JIVEX), "import", "--data", str(data), str(files[0].parent)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if run.returncode != 0:
        raise SystemExit(f"jivex import failed: {run.stderr}")
    return data, config


async def until(predicate: Any, timeout: float = 60.0) -> None:
    """Let the loop (and Qt) run until *predicate* holds."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the viewer did not get there in time")
        await asyncio.sleep(0)


async def open_once(link: CoreLink, study: dict) -> tuple[float, StudyViewer]:
    """Milliseconds from a new viewer to its first image painted."""
    started = time.perf_counter()
    viewer = StudyViewer(link, study)
    viewer.resize(*SIZE)
    viewer.show()
    await viewer.open()
    viewport = viewer.active
    await until(lambda: viewport.current is not None, 30)
    viewport.view.repaint()
    return (time.perf_counter() - started) * 1000.0, viewer


async def sweep(viewer: StudyViewer) -> float:
    """Frames per second stepping through the series, each painted."""
    viewport = viewer.active
    count = len(viewport.refs)
    viewport.show_index(0)
    await until(lambda: viewport.current is not None)
    started = time.perf_counter()
    for index in range(1, count):
        viewport.step(1)
        await until(
            lambda i=index: (
                viewport.current is not None
                and viewport.current.ref == viewport.refs[i]
            )
        )
        viewport.view.repaint()
    return (count - 1) / (time.perf_counter() - started)


def drag_window(viewer: StudyViewer, moves: int = 200) -> list[float]:
    """Milliseconds per right-button move, each repainted."""
    view = viewer.active.view
    right = Qt.MouseButton.RightButton
    centre = QPointF(view.width() / 2, view.height() / 2)

    def send(kind: Any, pos: QPointF, button: Any, buttons: Any) -> None:
        event = QMouseEvent(
            kind,
            pos,
            view.mapToGlobal(pos),
            button,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(view, event)

    send(QMouseEvent.Type.MouseButtonPress, centre, right, right)
    times = []
    for i in range(1, moves + 1):
        # A zig-zag, as a hand does: width and level both change.
        pos = centre + QPointF((i % 40) * 3.0, ((i // 40) % 2) * 40.0 - 20.0)
        started = time.perf_counter()
        send(QMouseEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, right)
        view.repaint()
        times.append((time.perf_counter() - started) * 1000.0)
    send(QMouseEvent.Type.MouseButtonRelease, centre, right, Qt.MouseButton.NoButton)
    return times


async def measure(data: Path, config: Path, opens: int) -> dict[str, Any]:
    link = CoreLink(data, config, attach=False)
    await link.start()
    try:
        studies = await link.request("list_studies", {})
        study = studies[0]
        open_times = []
        viewer = None
        for _ in range(opens):
            if viewer is not None:
                viewer.close_viewer()
                viewer.close()
                viewer.deleteLater()
                await asyncio.sleep(0.2)
            elapsed, viewer = await open_once(link, study)
            open_times.append(elapsed)
        assert viewer is not None
        await asyncio.sleep(0.5)  # let the first read-ahead settle
        loading = await sweep(viewer)
        loaded = await sweep(viewer)
        drag = drag_window(viewer)
        frames = len(viewer.active.refs)
        viewer.close_viewer()
        viewer.close()
        return {
            "frames": frames,
            "open_ms": open_times,
            "loading_fps": loading,
            "loaded_fps": loaded,
            "drag_ms": drag,
        }
    finally:
        await link.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--opens", type=int, default=7)
    args = parser.parse_args()

    cache = Path(tempfile.gettempdir()) / f"jivex-bench-ct-{args.count}"
    files = generate_study(args.count, cache)
    with tempfile.TemporaryDirectory(prefix="jivex-bench-viewer-") as tmp:
        started = time.perf_counter()
        data, config = import_study(files, Path(tmp))
        print(f"imported {len(files)} slices in {time.perf_counter() - started:.1f} s")
        app = QApplication.instance() or QApplication(sys.argv)
        app.setQuitOnLastWindowClosed(False)  # viewers come and go
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            result = loop.run_until_complete(measure(data, config, args.opens))

    opens = result["open_ms"]
    drag = sorted(result["drag_ms"])
    p95 = drag[int(len(drag) * 0.95) - 1]
    first = statistics.median(opens)
    print(
        f"open {result['frames']}-slice CT, first image: median {first:.0f} ms "
        f"(runs {', '.join(f'{t:.0f}' for t in opens)}); target < 300: "
        + ("met" if first < 300 else "NOT met")
    )
    print(f"scroll while loading: {result['loading_fps']:.0f} frames/s")
    print(
        f"scroll once loaded: {result['loaded_fps']:.0f} frames/s; target >= 60: "
        + ("met" if result["loaded_fps"] >= 60 else "NOT met")
    )
    print(
        f"window/level drag: median {statistics.median(drag):.2f} ms, "
        f"p95 {p95:.2f} ms per move; target < 16: " + ("met" if p95 < 16 else "NOT met")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
