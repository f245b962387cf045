"""The job monitor: how jobs read, and Retry/Cancel against a real core.

NOWHERE is a remote AE on a free port nothing listens on, with a retry
schedule of an hour: a send to it fails its first attempt and waits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from jivex_client.app import MainWindow
from jivex_client.core_link import CoreLink
from jivex_client.jobs.models import (
    JobFilterProxy,
    JobTableModel,
    can_cancel,
    can_retry,
    format_moment,
    progress,
    progress_text,
    state_text,
    subject_text,
)

pytestmark = pytest.mark.interop
#: The fixtures (qloop, link, send) live in tests/conftest_client.py.
pytest_plugins = ["tests.conftest_client"]

DATA = Path("/work/shared/data")
MR_FILES = [DATA / f"dcm4che/MR{n:02d}.dcm" for n in range(1, 3)]
MR_STUDY = "1.113654.3.13.1026"


def _job(**values: Any) -> dict[str, Any]:
    job = {
        "id": 1,
        "kind": "send",
        "state": "queued",
        "remote_ae": "PACS",
        "attempts": 0,
        "last_error": "",
        "total": 0,
        "completed": 0,
        "failed": 0,
        "warning": 0,
        "next_attempt_at": None,
        "request": {},
    }
    return {**job, **values}


# -- how jobs read, without a window ---------------------------------------


def test_states_read_as_the_user_expects() -> None:
    assert state_text(_job()) == "Queued"
    assert state_text(_job(attempts=1, last_error="down")) == "Waiting to retry"
    assert state_text(_job(state="running")) == "Running"
    assert state_text(_job(state="done", total=3, completed=3)) == "Done"
    assert state_text(_job(state="done", total=3, completed=2, failed=1)) == (
        "Done, with failures"
    )
    assert state_text(_job(state="failed")) == "Failed"
    assert state_text(_job(state="cancelled")) == "Cancelled"


def test_progress_counts_every_object_handled() -> None:
    assert progress(_job(total=9, completed=4, failed=1, warning=1)) == (6, 9)
    assert progress_text(_job(total=9, completed=4, failed=1)) == "5 / 9 (1 failed)"
    assert progress_text(_job(total=9, completed=9, state="done")) == "9 / 9"
    # A retrieve knows its total only from the archive's first response.
    assert progress(_job(kind="move")) == (0, 0)
    assert progress_text(_job(kind="move")) == "–"
    assert progress_text(_job(kind="move", state="done")) == "nothing to transfer"
    # One that failed before its first response (an archive answering C000
    # at once) transferred nothing because it failed: its last error says so.
    assert progress_text(_job(kind="move", state="failed")) == "–"


def _bar_colours(qapp: Any, job: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The colours the job table paints a quarter, half and three quarters
    across the job's progress bar."""
    from PySide6.QtGui import QColor, QImage, QPainter
    from PySide6.QtWidgets import QStyleOptionViewItem, QTableView

    from jivex_client.jobs.monitor import ProgressDelegate

    model = JobTableModel()
    model.upsert(job)
    view = QTableView()
    view.setModel(model)
    index = model.index(0, model.column("progress"))
    image = QImage(400, 30, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    option = QStyleOptionViewItem()
    option.rect = image.rect()
    option.widget = view
    painter = QPainter(image)
    ProgressDelegate(view).paint(painter, option, index)
    painter.end()
    # Off the label's centre line, where the bar's fill shows.
    return tuple(QColor(image.pixel(x, 6)) for x in (100, 200, 300))


def test_a_failed_job_does_not_look_complete(qapp: Any) -> None:
    from jivex_client.jobs.models import progress_parts
    from jivex_client.jobs.monitor import FAILED_COLOR

    failed = _job(state="failed", total=128, failed=128)
    assert progress_parts(failed) == (0, 128, 128)
    assert progress_parts(_job(total=4, completed=2, warning=1, failed=5)) == (
        3,
        1,
        4,
    )
    red = FAILED_COLOR.rgb()
    assert [c.rgb() for c in _bar_colours(qapp, failed)] == [red, red, red]
    done = _bar_colours(qapp, _job(state="done", total=4, completed=4))
    assert all(c.rgb() != red for c in done)
    assert len({c.rgb() for c in done}) == 1  # one fill across
    empty = _bar_colours(qapp, _job(state="queued", total=4))
    assert empty[0].rgb() != done[0].rgb()  # the fill shows on the groove
    half = _bar_colours(qapp, _job(state="done", total=4, completed=2, failed=2))
    assert half[0].rgb() == done[0].rgb() and half[2].rgb() == red


def test_retry_and_cancel_follow_the_cores_rules() -> None:
    assert can_cancel(_job()) and can_cancel(_job(state="running"))
    assert not can_cancel(_job(state="done")) and not can_cancel(
        _job(state="cancelled")
    )
    assert can_retry(_job()) and can_retry(_job(state="failed"))
    assert can_retry(_job(state="done", failed=2))
    assert not can_retry(_job(state="done")) and not can_retry(_job(state="running"))
    assert not can_retry(_job(state="cancelled"))


def test_times_show_the_date_only_when_not_today() -> None:
    now = dt.datetime(2024, 5, 6, 12, 0)
    assert format_moment("2024-05-06T13:05:09", now) == "13:05:09"
    assert format_moment("2024-05-07T01:00:00", now) == "2024-05-07 01:00"
    assert format_moment(None, now) == ""
    assert format_moment("not a time", now) == "not a time"


def test_the_subject_names_the_study_or_counts_the_objects() -> None:
    move = _job(
        kind="move", request={"level": "STUDY", "keys": {"StudyInstanceUID": "1.2"}}
    )
    assert subject_text(move) == "1.2"
    two = _job(
        kind="move",
        request={"level": "SERIES", "keys": {"SeriesInstanceUID": "1.2\\1.3"}},
    )
    assert subject_text(two) == "2 series"
    assert subject_text(_job(total=12)) == "12 objects"
    assert subject_text(_job(total=1)) == "1 object"


def test_the_model_updates_rows_in_place_newest_first(qapp: Any) -> None:
    model = JobTableModel()
    resets: list[bool] = []
    changed: list[int] = []
    model.modelReset.connect(lambda: resets.append(True))
    model.dataChanged.connect(lambda top, _bottom: changed.append(top.row()))
    for job_id in (2, 5, 3):
        model.upsert(_job(id=job_id))
    assert [j["id"] for j in model.jobs] == [5, 3, 2]
    model.upsert(_job(id=3, state="running", total=4, completed=1))
    assert changed == [1] and not resets
    assert model.job(3)["state"] == "running"
    assert model.index(1, model.column("progress")).data() == "1 / 4"
    proxy = JobFilterProxy()
    proxy.setSourceModel(model)
    model.upsert(_job(id=2, state="done"))
    proxy.set_hide_finished(True)
    assert proxy.rowCount() == 2
    proxy.set_ids({2, 3})
    assert proxy.rowCount() == 1
    proxy.set_hide_finished(False)
    assert proxy.rowCount() == 2


# -- the monitor against a real core ----------------------------------------


@pytest.fixture
def core_setup(tmp_path: Path) -> Iterator[Any]:
    from tests.conftest_client import CoreSetup
    from tests.helpers import free_port

    setup = CoreSetup(tmp_path)
    setup.add_remote("NOWHERE", free_port(), retry_minutes=[60, 60])
    yield setup


@pytest.fixture
def window(qtbot: Any, link: CoreLink) -> MainWindow:
    main = MainWindow(link)
    qtbot.addWidget(main)
    main.resize(1200, 700)
    main.show()
    qtbot.waitUntil(lambda: bool(main.browser.remotes), timeout=10000)
    return main


def test_cancel_in_the_monitor_ends_a_job_waiting_to_retry(
    qtbot: Any, window: MainWindow, send: Any, run_async: Any
) -> None:
    send(MR_FILES)
    tracker = window.tracker
    job = run_async(window.browser.send_studies("NOWHERE", [MR_STUDY]))
    assert job is not None
    job_id = int(job["id"])

    def current() -> dict[str, Any]:
        return tracker.job(job_id) or {}

    def waiting(attempts: int) -> bool:
        return current().get("attempts") == attempts and current()["state"] == "queued"

    qtbot.waitUntil(lambda: waiting(1), timeout=30000)
    assert "could not be reached" in current()["last_error"]
    assert window.jobs_button.text() == "Jobs: 1 active"

    window.jobs_action.trigger()
    monitor = window.job_monitor
    assert monitor is not None and monitor.isVisible()
    assert monitor.select_job(job_id)
    model = tracker.model
    row = monitor.proxy.mapFromSource(model.index(model.row_of(job_id), 0)).row()

    def cell(key: str) -> str:
        return monitor.proxy.index(row, model.column(key)).data()

    assert cell("state") == "Waiting to retry"
    assert cell("remote_ae") == "NOWHERE" and cell("kind") == "Send"
    assert cell("progress") == "0 / 2" and cell("attempts") == "1"
    assert cell("next_attempt_at")  # an hour from now
    assert "could not be reached" in cell("last_error")
    assert "could not be reached" in monitor.detail_label.text()
    assert monitor.retry_button.isEnabled() and monitor.cancel_button.isEnabled()

    # Retry runs it now: one more failed attempt, and it waits again.
    qtbot.mouseClick(monitor.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: waiting(2), timeout=30000)
    assert "queued to run now" in monitor.message_label.text()

    qtbot.waitUntil(monitor.cancel_button.isEnabled, timeout=15000)
    qtbot.mouseClick(monitor.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: current().get("state") == "cancelled", timeout=20000)
    qtbot.waitUntil(lambda: cell("state") == "Cancelled", timeout=15000)
    assert "cancel requested" in monitor.message_label.text()
    assert not monitor.cancel_button.isEnabled()
    assert not monitor.retry_button.isEnabled()
    qtbot.waitUntil(lambda: window.jobs_button.text() == "Jobs", timeout=15000)

    # The core refuses what no longer applies, and the monitor says why.
    run_async(monitor.cancel_job(job_id))
    assert monitor.message_label.text() == (
        f"Job {job_id}: the core refused: job {job_id} is already cancelled"
    )
    run_async(monitor.retry_job(job_id))
    assert "only queued jobs and jobs with failures can be retried" in (
        monitor.message_label.text()
    )
    assert "b00020" in monitor.message_label.styleSheet()

    monitor.hide_finished.setChecked(True)
    assert monitor.proxy.rowCount() == 0
    assert monitor.count_label.text() == "0 of 1 jobs"


def test_the_monitor_lists_jobs_queued_before_the_window_opened(
    qtbot: Any, link: CoreLink, send: Any, run_async: Any
) -> None:
    send(MR_FILES)
    queued = run_async(link.request("send", {"to": "NOWHERE", "uids": [MR_STUDY]}))
    main = MainWindow(link)
    qtbot.addWidget(main)
    monitor = main.show_jobs()
    qtbot.waitUntil(lambda: main.tracker.job(queued["id"]) is not None, timeout=10000)
    assert monitor.select_job(queued["id"])
    assert monitor.selected_job()["remote_ae"] == "NOWHERE"
