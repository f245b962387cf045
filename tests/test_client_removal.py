"""The Local tab's "Show removed", "Reload" and "Delete…", against a real
core and a second `jivex server` as the archive the study came from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from jivex_client.app import MainWindow
from jivex_client.browser.models import REMOVED_COLUMN, RowRole
from jivex_client.browser.removal import (
    deletable,
    delete_details,
    delete_question,
    reload_text,
    reloadable,
    removed_text,
)
from jivex_client.core_link import CoreLink
from jivex_client.jobs.models import kind_text
from tests.helpers import JivexServer, run_jivex

if TYPE_CHECKING:
    from tests.conftest_client import CoreSetup

pytestmark = pytest.mark.interop
#: The fixtures (qloop, link, send, run_async) live in tests/conftest_client.py.
pytest_plugins = ["tests.conftest_client"]

MR_FILES = [Path(f"/work/shared/data/dcm4che/MR{n:02d}.dcm") for n in range(1, 4)]
MR_STUDY = "1.113654.3.13.1026"
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


# -- the rules, without a window -------------------------------------------


def test_removed_rows_are_marked_and_offered_for_reload() -> None:
    local = {"StudyInstanceUID": "1", "Removed": False, "RemovedInstances": 0}
    partly = {"StudyInstanceUID": "2", "Removed": False, "RemovedInstances": 2}
    gone = {
        "StudyInstanceUID": "3",
        "Removed": True,
        "RemovedInstances": 9,
        "RemovedAt": "2026-12-01T10:00:00",
    }
    assert [removed_text(r) for r in (local, partly, gone)] == [
        "",
        "2 images removed",
        "removed 2026-12-01",
    ]
    assert reloadable([local, partly, gone]) == [partly, gone]
    assert deletable([local, partly, gone]) == [local, partly]
    # Rows of a browser without "Show removed" have neither key.
    assert deletable([{"StudyInstanceUID": "4"}]) and not reloadable(
        [{"StudyInstanceUID": "4"}]
    )


def test_the_confirmation_names_what_goes_and_what_cannot_come_back() -> None:
    preview = {
        "studies": [
            {
                "StudyDate": "20170716",
                "PatientName": "DOE^J1",
                "StudyDescription": "LEFT WRIST",
                "instances": 3,
                "of": 3,
            },
            {
                "StudyDate": "20040119",
                "PatientName": "CompressedSamples^CT1",
                "StudyDescription": "e+1",
                "instances": 1,
                "of": 2,
            },
        ],
        "instances": 4,
        "size": 3 * 2**20,
        "origins": ["ARCHIVE"],
        "not_reloadable": 1,
    }
    assert delete_question(preview) == (
        "Remove 2 studies (4 images, 3.0 MB) of DOE J1, CompressedSamples CT1 "
        "from this workstation?"
    )
    assert delete_details(preview).splitlines() == [
        "• 2017-07-16 – DOE J1 – LEFT WRIST",
        "• 2004-01-19 – CompressedSamples CT1 – e+1 (1 of 2 images)",
        "",
        "Reload fetches them again from ARCHIVE.",
        "",
        "1 image was not retrieved from a configured archive: no reload can "
        "bring it back.",
    ]
    result = {"jobs": [{"id": 7, "remote_ae": "ARCHIVE"}], "instances": 3}
    assert reload_text(result) == "Reloading 3 images from ARCHIVE (job 7); see Jobs."


# -- against the cores --------------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[JivexServer]:
    from tests.conftest_client import CoreSetup

    setup = CoreSetup(tmp_path)
    data = tmp_path / "archive"
    imported = run_jivex("import", "--data", str(data), *map(str, MR_FILES))
    assert imported.returncode == 0, imported.stderr
    server = JivexServer(
        data,
        extra=[
            *("--ae-title", "ARCHIVE"),
            *("--remote", f"JIVEX@127.0.0.1:{setup.storage_port}"),
        ],
    ).start()
    setup.add_remote("ARCHIVE", server.query_port)
    server.setup = setup  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def core_setup(archive: JivexServer) -> CoreSetup:
    return archive.setup  # type: ignore[attr-defined]


@pytest.fixture
def window(qtbot: Any, link: CoreLink) -> MainWindow:
    main = MainWindow(link)
    qtbot.addWidget(main)
    main.resize(1280, 800)
    main.show()
    qtbot.waitUntil(lambda: bool(main.browser.remotes), timeout=10000)
    return main


def _row(window: MainWindow, uid: str) -> int:
    """The view row of a study, -1 when not listed."""
    proxy = window.browser.study_proxy
    for row in range(proxy.rowCount()):
        if proxy.index(row, 0).data(RowRole)["StudyInstanceUID"] == uid:
            return row
    return -1


def _study(window: MainWindow, uid: str) -> dict[str, Any]:
    row = _row(window, uid)
    return window.browser.study_proxy.index(row, 0).data(RowRole) if row >= 0 else {}


def _select(qtbot: Any, window: MainWindow, uid: str) -> None:
    qtbot.waitUntil(lambda: _row(window, uid) >= 0, timeout=10000)
    window.browser.study_view.clearSelection()
    window.browser.study_view.selectRow(_row(window, uid))


def _confirmation(qtbot: Any, window: MainWindow) -> QMessageBox:
    browser = window.browser
    qtbot.mouseClick(browser.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: browser.delete_box is not None, timeout=10000)
    box = browser.delete_box
    assert box is not None and box.isVisible()
    return box


def test_delete_show_removed_and_reload(
    qtbot: Any, window: MainWindow, link: CoreLink, send: Any, run_async: Any
) -> None:
    browser = window.browser
    run_async(link.request("move", {"from": "ARCHIVE", "uids": [MR_STUDY]}))
    qtbot.waitUntil(
        lambda: _study(window, MR_STUDY).get("NumberOfStudyRelatedInstances") == 3,
        timeout=30000,
    )
    send([get_testdata_file("CT_small.dcm")])  # from STORESCU: no origin
    qtbot.waitUntil(lambda: _row(window, CT_STUDY) >= 0, timeout=10000)
    assert not browser.delete_button.isEnabled()
    assert not browser.reload_button.isEnabled()
    assert browser.study_view.isColumnHidden(REMOVED_COLUMN)

    # Delete… asks first, naming the study and where it would come back from.
    _select(qtbot, window, MR_STUDY)
    assert browser.delete_button.isEnabled() and not browser.reload_button.isEnabled()
    box = _confirmation(qtbot, window)
    assert box.text().startswith("Remove 1 study (3 images, ")
    assert box.text().endswith(" kB) of DOE J1 from this workstation?")
    assert "2017-07-16 – DOE J1 – LEFT WRIST" in box.informativeText()
    assert "Reload fetches them again from ARCHIVE." in box.informativeText()
    assert "no reload can bring" not in box.informativeText()
    confirm = browser.delete_confirm_button()
    assert confirm is not None
    qtbot.mouseClick(confirm, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _row(window, MR_STUDY) < 0, timeout=10000)
    assert "Removed 1 study (3 images) from this workstation." in (
        browser.message_label.text()
    )

    # Show removed: the study is back in the list, greyed and marked.
    browser.show_removed_box.setChecked(True)
    qtbot.waitUntil(lambda: _row(window, MR_STUDY) >= 0, timeout=10000)
    assert not browser.study_view.isColumnHidden(REMOVED_COLUMN)
    row = _row(window, MR_STUDY)
    cell = browser.study_proxy.index(row, 0)
    assert cell.data(RowRole)["Removed"] is True
    assert cell.data(Qt.ItemDataRole.FontRole).italic()
    grey = QApplication.palette().color(
        QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text
    )
    assert cell.data(Qt.ItemDataRole.ForegroundRole).color() == grey
    mark = browser.study_proxy.index(row, REMOVED_COLUMN).data()
    assert mark.startswith("removed 20")
    local = browser.study_proxy.index(_row(window, CT_STUDY), 0)
    assert local.data(Qt.ItemDataRole.ForegroundRole) is None
    assert (
        browser.study_proxy.index(_row(window, CT_STUDY), REMOVED_COLUMN).data() == ""
    )

    # Reload: offered for the removed study only; the core queues a retrieve
    # from the archive and the study comes back as a local one.
    _select(qtbot, window, MR_STUDY)
    assert browser.reload_button.isEnabled() and not browser.delete_button.isEnabled()
    assert not browser.send_button.isEnabled()
    qtbot.mouseClick(browser.reload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Reloading 3 images" in browser.message_label.text())
    assert "from ARCHIVE (job" in browser.message_label.text()
    qtbot.waitUntil(
        lambda: (
            _study(window, MR_STUDY).get("Removed") is False
            and _study(window, MR_STUDY).get("NumberOfStudyRelatedInstances") == 3
        ),
        timeout=30000,
    )
    assert _study(window, MR_STUDY)["RemovedInstances"] == 0
    reloads = [job for job in window.tracker.model.jobs if kind_text(job) == "Reload"]
    assert len(reloads) == 1 and reloads[0]["remote_ae"] == "ARCHIVE"

    # The study a modality sent cannot come back: the confirmation says so,
    # and Cancel removes nothing.
    _select(qtbot, window, CT_STUDY)
    box = _confirmation(qtbot, window)
    assert "CompressedSamples CT1" in box.text()
    assert (
        "1 image was not retrieved from a configured archive: no reload can "
        "bring it back." in box.informativeText()
    )
    qtbot.mouseClick(
        box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: browser.delete_box is None, timeout=5000)
    qtbot.wait(300)
    assert _study(window, CT_STUDY).get("Removed") is False
    assert run_async(link.request("status"))["removed"] == 0
