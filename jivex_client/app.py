"""The workstation's entry point (``jivex gui``) and its main window."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import qasync
from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QToolButton,
    QWidget,
)

from jivex_client.browser.widget import StudyBrowser
from jivex_client.core_link import CoreError, CoreLink
from jivex_client.jobs.monitor import JobMonitor
from jivex_client.jobs.tracker import JobTracker
from jivex_client.tasks import spawn
from jivex_client.viewer.loader import FrameCache, FrameLoader
from jivex_client.viewer.overlay import OverlayTemplates
from jivex_client.viewer.widget import StudyViewer, study_title
from jivex_core.config import ViewerSettings, load_settings

logger = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """The study browser and one viewer tab per opened study."""

    def __init__(
        self,
        link: CoreLink,
        parent: QWidget | None = None,
        viewer_settings: ViewerSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.link = link
        self.viewer_settings = viewer_settings or ViewerSettings()
        self.loader = FrameLoader(FrameCache(self.viewer_settings.cache_mb * 2**20))
        self.templates = OverlayTemplates(
            {
                key: corners.model_dump()
                for key, corners in self.viewer_settings.overlay.items()
            }
        )
        self.setWindowTitle(self.tr("JiveX-Py workstation"))
        self.tracker = JobTracker(link, self)
        self.job_monitor: JobMonitor | None = None
        self.tabs = QTabWidget()
        self.tabs.setTabsClosable(True)
        self.tabs.setDocumentMode(True)
        self.browser = StudyBrowser(link, self.tracker)
        self.tabs.addTab(self.browser, self.tr("Studies"))
        self.tabs.tabBar().setTabButton(
            0, self.tabs.tabBar().ButtonPosition.RightSide, None
        )
        self.setCentralWidget(self.tabs)
        self.core_label = QLabel(link.state or self.tr("Core not started"))
        self.jobs_action = QAction(self.tr("&Jobs…"), self)
        self.jobs_action.setShortcut(QKeySequence(self.tr("Ctrl+J")))
        self.jobs_action.setToolTip(self.tr("Sends, forwards and retrieves"))
        self.menuBar().addMenu(self.tr("&View")).addAction(self.jobs_action)
        self.jobs_button = QToolButton()
        self.jobs_button.setDefaultAction(self.jobs_action)
        self.jobs_button.setAutoRaise(True)
        self.statusBar().addPermanentWidget(self.jobs_button)
        self.statusBar().addPermanentWidget(self.core_label)
        self._on_tracker_active_count_changed(0)
        self._death_box: QMessageBox | None = None

        self.tabs.tabCloseRequested.connect(self._on_tabs_tab_close_requested)
        self.browser.series_activated.connect(self._on_browser_series_activated)
        self.browser.jobs_requested.connect(self.show_jobs)
        self.jobs_action.triggered.connect(self.show_jobs)
        self.tracker.active_count_changed.connect(self._on_tracker_active_count_changed)
        link.state_changed.connect(self._on_link_state_changed)
        link.core_died.connect(self._on_link_core_died)
        link.event_received.connect(self._on_link_event_received)

    def viewers(self) -> list[StudyViewer]:
        """The open viewer tabs."""
        return [
            w
            for i in range(self.tabs.count())
            if isinstance(w := self.tabs.widget(i), StudyViewer)
        ]

    async def open_series(self, study: dict[str, Any], series: dict[str, Any]) -> None:
        """Show *series* in the active viewport of its study's tab (opened
        when needed) and bring the tab forward."""
        uid = series["SeriesInstanceUID"]
        for viewer in self.viewers():
            if viewer.study.get("StudyInstanceUID") == study.get("StudyInstanceUID"):
                self.tabs.setCurrentWidget(viewer)
                if uid not in {v.series_uid for v in viewer.viewports()}:
                    await viewer.show_series(uid)
                return
        viewer = StudyViewer(self.link, study, self.loader, self.templates)
        viewer.message_changed.connect(self._on_viewer_message_changed)
        index = self.tabs.addTab(viewer, study_title(study) or self.tr("Study"))
        self.tabs.setCurrentIndex(index)
        try:
            await viewer.open(uid)
        except CoreError as exc:
            self.statusBar().showMessage(
                self.tr("Cannot open the study: {error}").format(error=exc), 10000
            )
            return
        viewer.active.view.setFocus()

    def show_jobs(self) -> JobMonitor:
        """Show the job monitor window (one, kept while the main window is)."""
        if self.job_monitor is None:
            self.job_monitor = JobMonitor(self.tracker, self)
        self.job_monitor.show()
        self.job_monitor.raise_()
        self.job_monitor.activateWindow()
        return self.job_monitor

    # -- slots -----------------------------------------------------------

    def _on_tracker_active_count_changed(self, count: int) -> None:
        self.jobs_button.setText(
            self.tr("Jobs: {count} active").format(count=count)
            if count
            else self.tr("Jobs")
        )

    def _on_browser_series_activated(self, study: dict, series: dict) -> None:
        spawn(self.open_series(study, series), "Opening a series")

    def _on_tabs_tab_close_requested(self, index: int) -> None:
        widget = self.tabs.widget(index)
        if isinstance(widget, StudyViewer):
            widget.close_viewer()
            self.tabs.removeTab(index)
            widget.deleteLater()

    def _on_viewer_message_changed(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)

    def _on_link_state_changed(self, text: str) -> None:
        self.core_label.setText(text)

    def _on_link_event_received(self, name: str, data: dict) -> None:
        if name == "service_state" and data.get("state") == "stopped":
            self.statusBar().showMessage(
                self.tr("Service {service} stopped: {error}").format(
                    service=data.get("service", ""), error=data.get("error", "")
                ),
                15000,
            )

    def _on_link_core_died(self, message: str) -> None:
        self.statusBar().showMessage(message.splitlines()[0], 15000)
        # One non-modal box, updated on each death, so that repeated
        # restarts never pile up dialogs or block the event loop.
        if self._death_box is None:
            self._death_box = QMessageBox(
                QMessageBox.Icon.Warning,
                self.tr("Core stopped"),
                "",
                QMessageBox.StandardButton.Ok,
                self,
            )
            self._death_box.setWindowModality(Qt.WindowModality.NonModal)
        self._death_box.setText(
            self.tr("The core process stopped and is being restarted.")
        )
        self._death_box.setDetailedText(message)
        self._death_box.show()


def show_error(title: str, text: str) -> None:
    """Show an error to the user without blocking the event loop."""
    app = QApplication.instance()
    if app is None:
        return
    box = QMessageBox(QMessageBox.Icon.Critical, title, text)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.show()


def install_exception_hooks() -> None:
    """Log every uncaught exception and show it; none passes silently.

    Exceptions raised in Qt slots reach :func:`sys.excepthook`; those of
    worker threads reach :func:`threading.excepthook`, which runs off the GUI
    thread, so the dialog is posted to the GUI thread with a timer.
    """

    def main_hook(
        kind: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        logger.critical("Uncaught exception", exc_info=(kind, exc, tb))
        text = "".join(traceback.format_exception_only(kind, exc)).strip()
        show_error(QCoreApplication.translate("App", "Unexpected error"), text)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        logger.critical(
            "Uncaught exception in thread '%s'",
            args.thread.name if args.thread else "?",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )
        text = f"{args.exc_type.__name__}: {args.exc_value}"
        app = QApplication.instance()
        if app is not None:
            QTimer.singleShot(
                0,
                app,
                lambda: show_error(
                    QCoreApplication.translate("App", "Unexpected error"), text
                ),
            )

    sys.excepthook = main_hook
    threading.excepthook = thread_hook


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    exc = context.get("exception")
    logger.error("Event loop error: %s", context.get("message"), exc_info=exc or None)


def _setup_logging(data_dir: Path) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(data_dir / "client.log", encoding="utf-8"))
    except OSError:
        pass  # the stream handler still shows everything
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def main(args: Any) -> int:
    """Run the workstation; *args* has ``config`` and ``data`` (may be None).

    Returns the process exit code.
    """
    config = Path(args.config) if getattr(args, "config", None) else None
    settings = load_settings(config, {"storage.data_dir": getattr(args, "data", None)})
    data_dir = settings.data_dir
    _setup_logging(data_dir)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("JiveX-Py")
    install_exception_hooks()

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(_loop_exception_handler)
    link = CoreLink(data_dir, config)
    window = MainWindow(link, viewer_settings=settings.viewer)
    window.resize(1280, 800)
    window.show()

    async def start_core() -> None:
        try:
            await link.start()
        except (CoreError, OSError) as exc:
            logger.error("The core did not start: %s", exc)
            window.statusBar().showMessage(str(exc).splitlines()[0], 15000)
            link.recover_later(str(exc))

    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)

    async def run() -> None:
        spawn(start_core(), "Starting the core")
        await closed.wait()
        await link.stop()

    with loop:
        loop.run_until_complete(run())
    return 0
