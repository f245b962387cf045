"""The browser's Remote tab and "Send to…", against real peers.

The archive is a second `jivex server` (AE title ARCHIVE) holding the query
studies of tests/corpus.py and three copies of CT_small dated 6 and 7 days
ago; it knows the workstation's core as the C-MOVE destination JIVEX. Sends
go to DCMTK's storescp. GONE is an archive nobody listens for.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QDate, Qt

from jivex_client.app import MainWindow
from jivex_client.browser.models import RowRole
from jivex_client.browser.query import (
    DatePreset,
    QueryFormError,
    RemoteQuery,
    date_range,
    dicom_date,
    name_pattern,
    study_row,
)
from jivex_client.browser.remote import RemotePanel
from jivex_client.browser.send import SendDialog, send_summary
from jivex_client.core_link import CoreLink
from jivex_client.jobs.models import ProgressRole
from jivex_core.uids import new_uid
from tests.corpus import query_archive_files
from tests.helpers import (
    JivexServer,
    StoreSCP,
    free_port,
    pynetdicom_peer,
    run_jivex,
)

if TYPE_CHECKING:
    # Imported by pytest as a plugin (below); importing it here first would
    # keep pytest from rewriting its asserts.
    from tests.conftest_client import CoreSetup

pytestmark = pytest.mark.interop
#: The fixtures (qloop, link, send, run_async) live in tests/conftest_client.py.
pytest_plugins = ["tests.conftest_client"]

DATA = Path("/work/shared/data")
MR_FILES = [DATA / f"dcm4che/MR{n:02d}.dcm" for n in range(1, 4)]
MR_STUDY = "1.113654.3.13.1026"
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


# -- the form's rules, without a window ------------------------------------


def test_date_presets_make_dicom_dates_and_ranges() -> None:
    today = dt.date(2024, 3, 1)  # the day after a leap day
    assert date_range(DatePreset.ANY, today) == ""
    assert date_range(DatePreset.TODAY, today) == "20240301"
    assert date_range(DatePreset.YESTERDAY, today) == "20240229"
    # Today and the six days before, both ends included.
    assert date_range(DatePreset.LAST_7_DAYS, today) == "20240224-20240301"
    assert date_range(DatePreset.LAST_7_DAYS, dt.date(2025, 1, 3)) == (
        "20241228-20250103"
    )
    start, end = dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    assert date_range(DatePreset.CUSTOM, today, start, end) == "20240101-20240131"
    assert date_range(DatePreset.CUSTOM, today, start, None) == "20240101-"
    assert date_range(DatePreset.CUSTOM, today, None, end) == "-20240131"
    assert date_range(DatePreset.CUSTOM, today, start, start) == "20240101"
    assert date_range(DatePreset.CUSTOM, today) == ""
    # The presets ignore the custom dates.
    assert date_range(DatePreset.TODAY, today, start, end) == "20240301"


def test_a_custom_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(QueryFormError, match=r"starts \(2024-02-01\) after"):
        date_range(
            DatePreset.CUSTOM,
            dt.date(2024, 3, 1),
            dt.date(2024, 2, 1),
            dt.date(2024, 1, 1),
        )


def test_the_form_sends_only_the_keys_filled_in() -> None:
    today = dt.date(2024, 3, 1)
    assert RemoteQuery().keys(today) == {}
    query = RemoteQuery(
        patient_name=" doe ",
        patient_id="583295",
        date_preset=DatePreset.YESTERDAY,
        modality=" mr",
        accession_number="A1 ",
    )
    assert query.keys(today) == {
        "PatientName": "doe*",
        "PatientID": "583295",
        "StudyDate": "20240229",
        "ModalitiesInStudy": "MR",
        "AccessionNumber": "A1",
    }
    assert name_pattern("doe^j?") == "doe^j?"
    assert name_pattern("*wrist") == "*wrist"
    assert name_pattern("  ") == ""
    with pytest.raises(QueryFormError, match="PatientID cannot contain a backslash"):
        RemoteQuery(patient_id="A\\B").keys(today)


def test_answers_become_rows_of_the_local_shape() -> None:
    row = study_row(
        {
            "PatientName": "DOE^J1",
            "ModalitiesInStudy": "CT\\MR",
            "NumberOfStudyRelatedSeries": "",
            "NumberOfStudyRelatedInstances": "9",
        }
    )
    assert row["ModalitiesInStudy"] == ["CT", "MR"]
    assert row["NumberOfStudyRelatedSeries"] is None
    assert row["NumberOfStudyRelatedInstances"] == 9
    assert row["PatientName"] == "DOE^J1"
    assert study_row({})["ModalitiesInStudy"] == []


def test_the_send_summary_names_studies_images_and_patients() -> None:
    one = {"PatientName": "DOE^J1", "NumberOfStudyRelatedInstances": 9}
    assert send_summary([one]) == "1 study (9 images) of DOE J1"
    others = [
        {"PatientName": "", "PatientID": "X1", "NumberOfStudyRelatedInstances": 1},
        {"PatientName": "A^B", "NumberOfStudyRelatedInstances": 0},
        {"PatientName": "C^D", "NumberOfStudyRelatedInstances": None},
    ]
    assert send_summary([one, *others]) == (
        "4 studies (10 images) of DOE J1, X1 and 2 more"
    )


# -- against the archive ---------------------------------------------------


@dataclass
class Peers:
    setup: CoreSetup
    archive: JivexServer
    store: StoreSCP
    today: dt.date


def _dated_copy(folder: Path, patient_id: str, day: dt.date) -> str:
    """CT_small as a new study of its own on *day*."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = f"Dated^{patient_id}"
    ds.PatientID = patient_id
    ds.StudyDate = dicom_date(day)
    ds.AccessionNumber = f"ACC-{patient_id}"
    ds.StudyInstanceUID = new_uid()
    ds.SeriesInstanceUID = new_uid()
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = folder / f"{patient_id}.dcm"
    ds.save_as(path)
    return str(path)


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    from tests.conftest_client import CoreSetup

    setup = CoreSetup(tmp_path)
    today = dt.date.today()
    files = tmp_path / "dated"
    files.mkdir()
    dated = [
        _dated_copy(files, "DAYS6", today - dt.timedelta(days=6)),
        _dated_copy(files, "DAYS7", today - dt.timedelta(days=7)),
        _dated_copy(files, "TODAY", today),
    ]
    archive_data = tmp_path / "archive"
    imported = run_jivex(
        "import", "--data", str(archive_data), *query_archive_files(), *dated
    )
    assert imported.returncode == 0, imported.stderr
    archive = JivexServer(
        archive_data,
        extra=[
            *("--ae-title", "ARCHIVE"),
            *("--remote", f"JIVEX@127.0.0.1:{setup.storage_port}"),
        ],
    ).start()
    store = StoreSCP(tmp_path, "STORE").start()
    setup.add_remote("ARCHIVE", archive.query_port)
    # The same archive under a second title, cut after two answers.
    setup.add_remote("LIMITED", archive.query_port, max_query_results=2)
    setup.add_remote("STORE", store.port)
    setup.add_remote("GONE", free_port(), retry_minutes=[60])
    slow, slow_port = _slow_archive()
    setup.add_remote("SLOW", slow_port)
    try:
        yield Peers(setup, archive, store, today)
    finally:
        slow.shutdown()
        store.stop()
        archive.stop()


def _slow_archive() -> tuple[Any, int]:
    """A pynetdicom Q/R SCP that answers one study every 50 ms, up to 200,
    and stops at a C-FIND-CANCEL: something to press Stop on."""
    from pydicom.dataset import Dataset
    from pynetdicom import evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    def on_find(event: Any) -> Any:
        for number in range(200):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.PatientName = f"SLOW^{number}"
            ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.7461.99.7.{number + 1}"
            time.sleep(0.05)
            yield 0xFF00, ds

    server, port = pynetdicom_peer(
        "SLOW",
        [(StudyRootQueryRetrieveInformationModelFind,)],
        [(evt.EVT_C_FIND, on_find)],
    )
    return server, port


@pytest.fixture
def core_setup(peers: Peers) -> CoreSetup:
    """The workstation's core, with the peers in its remote AE table."""
    return peers.setup


@pytest.fixture
def window(qtbot: Any, link: CoreLink) -> MainWindow:
    main = MainWindow(link)
    qtbot.addWidget(main)
    main.resize(1280, 800)
    main.show()
    panel = main.browser.remote_panel
    qtbot.waitUntil(lambda: panel.archive_combo.count() == 5, timeout=10000)
    main.browser.tabs.setCurrentWidget(panel)
    return main


def _search(qtbot: Any, panel: RemotePanel) -> int:
    """Click Search; the number of studies shown (-1 on failure)."""
    with qtbot.waitSignal(panel.search_finished, timeout=30000) as blocker:
        qtbot.mouseClick(panel.search_button, Qt.MouseButton.LeftButton)
    return int(blocker.args[0])


def _column(panel: RemotePanel, column: int) -> list[str]:
    proxy = panel.result_proxy
    return sorted(proxy.index(r, column).data() for r in range(proxy.rowCount()))


def test_archives_come_from_the_core(window: MainWindow) -> None:
    panel = window.browser.remote_panel
    titles = [panel.archive_combo.itemData(i) for i in range(4)]
    assert titles == ["ARCHIVE", "LIMITED", "STORE", "GONE"]
    assert "127.0.0.1:" in panel.archive_combo.itemText(0)
    # The answers show in the columns of the local table.
    local = window.browser.study_model.columns
    assert [c.title for c in panel.result_model.columns] == [c.title for c in local]


def test_last_7_days_finds_the_studies_of_the_last_week(
    qtbot: Any, window: MainWindow, peers: Peers
) -> None:
    panel = window.browser.remote_panel
    panel.set_date_preset(DatePreset.LAST_7_DAYS)
    today = peers.today
    expected = f"{dicom_date(today - dt.timedelta(days=6))}-{dicom_date(today)}"
    assert panel.query().keys(today) == {"StudyDate": expected}
    assert not panel.date_from.isEnabled()

    assert _search(qtbot, panel) == 2
    assert _column(panel, 1) == ["DAYS6", "TODAY"]  # not DAYS7, nor 2004
    assert "2 studies found on ARCHIVE" in panel.message_label.text()

    panel.set_date_preset(DatePreset.TODAY)
    assert _search(qtbot, panel) == 1
    assert _column(panel, 1) == ["TODAY"]


def test_name_search_returns_the_matching_studies(
    qtbot: Any, window: MainWindow
) -> None:
    panel = window.browser.remote_panel
    qtbot.keyClicks(panel.name_edit, "doe")  # lower case, no wild card
    assert _search(qtbot, panel) == 1
    row = panel.result_proxy.index(0, 0).data(RowRole)
    assert row["StudyInstanceUID"] == MR_STUDY and row["PatientID"] == "583295"
    assert panel.result_proxy.index(0, 0).data() == "DOE J1"
    assert panel.result_proxy.index(0, 4).data() == "MR"
    assert panel.result_proxy.index(0, 8).data() == "9"
    assert "1 study found on ARCHIVE" in panel.message_label.text()

    panel.name_edit.setText("yam*")
    assert _search(qtbot, panel) == 1
    assert _column(panel, 0) == ["Yamada Tarou = 山田 太郎 = やまだ たろう"]

    panel.name_edit.setText("nobody")
    assert _search(qtbot, panel) == 0
    assert "No study on ARCHIVE matches" in panel.message_label.text()


def test_modality_and_custom_dates_narrow_the_search(
    qtbot: Any, window: MainWindow
) -> None:
    panel = window.browser.remote_panel
    panel.modality_combo.setEditText("ct")
    assert _search(qtbot, panel) == 4  # CT_small and its three copies
    panel.set_date_preset(DatePreset.CUSTOM)
    assert panel.date_from.isEnabled()
    panel.date_from.setDate(QDate(2004, 1, 1))
    panel.date_to.setDate(QDate(2004, 12, 31))
    assert _search(qtbot, panel) == 1
    assert _column(panel, 1) == ["1CT1"]
    assert _column(panel, 3) == ["2004-01-19"]

    # A range that ends before it starts is refused before any query.
    panel.date_to.setDate(QDate(2003, 1, 1))
    assert _search(qtbot, panel) == -1
    assert "after it ends" in panel.message_label.text()
    assert panel.result_proxy.rowCount() == 1  # the last answers stay

    panel.clear_form()
    panel.accession_edit.setText("ACC-DAYS7")
    assert _search(qtbot, panel) == 1
    assert _column(panel, 1) == ["DAYS7"]


def test_stop_ends_a_running_search(qtbot: Any, window: MainWindow) -> None:
    panel = window.browser.remote_panel
    assert panel.set_archive("SLOW")
    assert not panel.stop_button.isEnabled()
    with qtbot.waitSignal(panel.search_finished, timeout=30000) as blocker:
        qtbot.mouseClick(panel.search_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(panel.stop_button.isEnabled, timeout=5000)
        qtbot.wait(500)
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    shown = int(blocker.args[0])
    assert 1 <= shown < 200
    assert "Search stopped" in panel.message_label.text()
    assert not panel.stop_button.isEnabled() and panel.search_button.isEnabled()


def test_a_search_cut_at_the_limit_says_so(qtbot: Any, window: MainWindow) -> None:
    panel = window.browser.remote_panel
    assert panel.set_archive("LIMITED")
    assert _search(qtbot, panel) == 2
    assert "more matching studies than the 2 shown" in panel.message_label.text()


def test_retrieve_shows_the_job_until_done_and_the_study_appears_locally(
    qtbot: Any, window: MainWindow
) -> None:
    panel = window.browser.remote_panel
    tracker = window.tracker
    states: list[str] = []
    tracker.job_changed.connect(lambda job: states.append(job["state"]))
    assert not panel.retrieve_button.isEnabled()
    panel.name_edit.setText("doe")
    assert _search(qtbot, panel) == 1
    panel.result_view.selectRow(0)
    assert panel.retrieve_button.isEnabled()
    qtbot.mouseClick(panel.retrieve_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: len(panel.retrieve_ids) == 1, timeout=10000)
    (job_id,) = panel.retrieve_ids
    qtbot.waitUntil(
        lambda: (tracker.job(job_id) or {}).get("state") == "done", timeout=60000
    )
    job = tracker.job(job_id)
    assert job is not None
    assert job["kind"] == "move" and job["remote_ae"] == "ARCHIVE"
    assert job["completed"] == 9 and job["failed"] == 0
    assert "running" in states and states[-1] == "done"

    # The tab's own list: one row, a full progress bar.
    assert panel.retrieve_proxy.rowCount() == 1
    progress = tracker.model.column("progress")
    cell = panel.retrieve_proxy.index(0, progress)
    assert cell.data(ProgressRole) == (9, 9)
    assert cell.data() == "9 / 9"
    assert panel.retrieve_proxy.index(0, tracker.model.column("subject")).data() == (
        MR_STUDY
    )

    # The images arrived through the core's Storage SCP: the Local tab has them.
    local = window.browser.study_model
    qtbot.waitUntil(
        lambda: any(
            r["StudyInstanceUID"] == MR_STUDY
            and r["NumberOfStudyRelatedInstances"] == 9
            for r in local.rows
        ),
        timeout=10000,
    )

    # And the job monitor lists the same job.
    monitor = window.show_jobs()
    assert monitor.select_job(job_id)
    assert monitor.selected_job()["state"] == "done"


def test_send_to_a_storescp_completes(
    qtbot: Any, window: MainWindow, send: Any, peers: Peers
) -> None:
    browser = window.browser
    browser.tabs.setCurrentIndex(0)
    send(MR_FILES)
    qtbot.waitUntil(lambda: browser.study_proxy.rowCount() == 1, timeout=10000)
    assert not browser.send_button.isEnabled()  # nothing selected yet
    browser.study_view.selectRow(0)
    assert browser.send_button.isEnabled()
    qtbot.mouseClick(browser.send_button, Qt.MouseButton.LeftButton)
    dialog = browser._send_dialog
    assert isinstance(dialog, SendDialog) and dialog.isVisible()
    assert dialog.summary_label.text() == "1 study (3 images) of DOE J1"
    assert dialog.set_destination("STORE")
    assert dialog.uids() == [MR_STUDY]
    dialog.buttons.accepted.emit()

    qtbot.waitUntil(
        lambda: any(j["kind"] == "send" for j in window.tracker.model.jobs),
        timeout=10000,
    )
    (job,) = [j for j in window.tracker.model.jobs if j["kind"] == "send"]
    qtbot.waitUntil(
        lambda: window.tracker.job(job["id"])["state"] == "done", timeout=60000
    )
    done = window.tracker.job(job["id"])
    assert done["remote_ae"] == "STORE" and done["completed"] == 3
    assert f"job {job['id']}" in browser.message_label.text()
    sent = {str(pydicom.dcmread(p).SOPInstanceUID) for p in MR_FILES}
    assert peers.store.received() == sent


def test_an_unreachable_archive_shows_a_readable_error(
    qtbot: Any, window: MainWindow
) -> None:
    panel = window.browser.remote_panel
    assert _search(qtbot, panel) == 7
    panel.result_view.selectRow(0)
    assert panel.retrieve_button.isEnabled()
    assert panel.set_archive("GONE")
    assert _search(qtbot, panel) == -1
    text = panel.message_label.text()
    assert text.startswith("The search on GONE failed: 'GONE' at 127.0.0.1:")
    assert "could not be reached" in text
    assert "b00020" in panel.message_label.styleSheet()  # shown as an error
    assert panel.search_button.isEnabled() and not panel.retrieve_button.isEnabled()
    assert panel.result_proxy.rowCount() == 0

    # Everything still works: the Local tab, another archive.
    window.browser.tabs.setCurrentIndex(0)
    qtbot.keyClicks(window.browser.filter_edit, "x")
    window.browser.tabs.setCurrentWidget(panel)
    assert panel.set_archive("ARCHIVE")
    panel.name_edit.setText("hong")
    assert _search(qtbot, panel) == 1
    assert panel.message_label.styleSheet() == ""
