"""The job monitor: how jobs read."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
