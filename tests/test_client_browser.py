"""The study browser against a real core, fed by DCMTK's storescu."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView

from jivex_client.app import MainWindow
from jivex_client.browser.models import DESCRIPTION_COLUMN, REMOVED_COLUMN, RowRole
from jivex_client.core_link import CoreLink
from jivex_client.text import format_person_name
from jivex_client.viewer.attributes import AttributesView, attribute_rows

DATA = Path("/work/shared/data")
MR_FILES = [DATA / f"dcm4che/MR{n:02d}.dcm" for n in range(1, 17)]

pytestmark = pytest.mark.interop
#: The fixtures (qloop, core_setup, link) live in tests/conftest_client.py.
pytest_plugins = ["tests.conftest_client"]


def _names(window: MainWindow) -> list[str]:
    proxy = window.browser.study_proxy
    return [
        proxy.index(row, 0).data(Qt.ItemDataRole.DisplayRole)
        for row in range(proxy.rowCount())
    ]


@pytest.fixture
def window(qtbot: Any, link: CoreLink) -> MainWindow:
    main = MainWindow(link)
    qtbot.addWidget(main)
    main.resize(1200, 700)
    main.show()
    return main


def test_study_sent_while_the_window_is_open_appears(
    qtbot: Any, window: MainWindow, send: Any
) -> None:
    ct = get_testdata_file("CT_small.dcm")
    ct_name = format_person_name(str(pydicom.dcmread(ct).PatientName))
    assert window.browser.study_model.rowCount() == 0

    send([ct, *MR_FILES[:4]])

    qtbot.waitUntil(lambda: len(_names(window)) == 2, timeout=5000)
    names = _names(window)
    assert ct_name in names
    assert "DOE J1" in names
    rows = {r["PatientID"]: r for r in window.browser.study_model.rows}
    assert rows["583295"]["NumberOfStudyRelatedInstances"] == 4
    assert rows["1CT1"]["ModalitiesInStudy"] == ["CT"]

    # More images of the same study update its row in place.
    send(MR_FILES[4:])
    qtbot.waitUntil(
        lambda: (
            {
                r["PatientID"]: r["NumberOfStudyRelatedInstances"]
                for r in window.browser.study_model.rows
            }.get("583295")
            == 16
        ),
        timeout=5000,
    )
    assert "Core running" in window.core_label.text()


def test_selecting_a_study_lists_its_series(
    qtbot: Any, window: MainWindow, send: Any
) -> None:
    send(MR_FILES[:3])
    qtbot.waitUntil(lambda: window.browser.study_proxy.rowCount() == 1, timeout=5000)
    window.browser.study_view.selectRow(0)
    series = window.browser.series_model
    qtbot.waitUntil(lambda: series.rowCount() == 1, timeout=5000)
    row = series.index(0, 0).data(RowRole)
    assert row["Modality"] == "MR"
    assert row["NumberOfSeriesRelatedInstances"] == 3


def test_quick_filter_hides_rows_that_do_not_match(
    qtbot: Any, window: MainWindow, send: Any
) -> None:
    ct = get_testdata_file("CT_small.dcm")
    send([ct, MR_FILES[0]])
    browser = window.browser
    qtbot.waitUntil(lambda: browser.study_proxy.rowCount() == 2, timeout=5000)

    # Case-insensitive, on any column: "left wrist" is the MR's description.
    qtbot.keyClicks(browser.filter_edit, "left WRIST")
    assert _names(window) == ["DOE J1"]
    browser.filter_edit.clear()
    assert browser.study_proxy.rowCount() == 2
    qtbot.keyClicks(browser.filter_edit, "1ct1")  # a patient ID
    assert browser.study_proxy.rowCount() == 1
    assert browser.study_proxy.index(0, 1).data() == "1CT1"
    browser.filter_edit.setText("no such patient")
    assert browser.study_proxy.rowCount() == 0


def test_sorting_by_images_is_numeric(
    qtbot: Any, window: MainWindow, send: Any
) -> None:
    ct = get_testdata_file("CT_small.dcm")
    send([ct, *MR_FILES[:10]])
    browser = window.browser
    qtbot.waitUntil(lambda: browser.study_proxy.rowCount() == 2, timeout=5000)
    qtbot.waitUntil(
        lambda: (
            sum(r["NumberOfStudyRelatedInstances"] for r in browser.study_model.rows)
            == 11
        ),
        timeout=5000,
    )
    browser.study_view.sortByColumn(8, Qt.SortOrder.AscendingOrder)
    counts = [browser.study_proxy.index(r, 8).data() for r in range(2)]
    assert counts == ["1", "10"]
    browser.study_view.sortByColumn(8, Qt.SortOrder.DescendingOrder)
    counts = [browser.study_proxy.index(r, 8).data() for r in range(2)]
    assert counts == ["10", "1"]


def test_japanese_and_korean_names_are_shown_decoded(
    qtbot: Any, window: MainWindow, send: Any
) -> None:
    files = [get_charset_files(n)[0] for n in ("chrH31.dcm", "chrI2.dcm")]
    send(files)
    qtbot.waitUntil(lambda: window.browser.study_proxy.rowCount() == 2, timeout=5000)
    names = set(_names(window))
    # The names of the examples in PS3.5 Annex H (ISO 2022 IR 87, Japanese)
    # and Annex I (ISO 2022 IR 149, Korean): every component group shown.
    assert "Yamada Tarou = 山田 太郎 = やまだ たろう" in names
    assert "Hong Gildong = 洪 吉洞 = 홍 길동" in names
    tooltips = {
        window.browser.study_proxy.index(r, 0).data(Qt.ItemDataRole.ToolTipRole)
        for r in range(2)
    }
    assert "Yamada^Tarou=山田^太郎=やまだ^たろう" in tooltips


@pytest.mark.parametrize(
    ("name", "own_charset"),
    [("chrSQEncoding1.dcm", False), ("chrSQEncoding.dcm", True)],
)
def test_names_in_sequence_items_use_the_character_set_in_force(
    qtbot: Any, name: str, own_charset: bool
) -> None:
    # chrSQEncoding1: the item inherits ISO 2022 IR 13 / IR 87 from the data
    # set; chrSQEncoding: the data set is UTF-8, the item declares IR 13/87.
    ds = pydicom.dcmread(get_charset_files(name)[0])
    item = ds.RequestedProcedureCodeSequence[0]
    assert ("SpecificCharacterSet" in item) is own_charset
    view = AttributesView()
    qtbot.addWidget(view)
    view.show_rows(attribute_rows(ds))
    assert "ﾔﾏﾀﾞ ﾀﾛｳ = 山田 太郎 = やまだ たろう" in view.values()
    nested = view.topLevelItem(view.topLevelItemCount() - 1)
    assert nested.text(1) == "RequestedProcedureCodeSequence"
    assert nested.child(0).child(nested.child(0).childCount() - 1).text(3) == (
        "ﾔﾏﾀﾞ ﾀﾛｳ = 山田 太郎 = やまだ たろう"
    )


def test_format_person_name_keeps_every_group() -> None:
    assert format_person_name("Doe^John^^Dr") == "Doe John Dr"
    assert format_person_name("=山田^太郎") == " = 山田 太郎"
    assert format_person_name("A^B\\C^D") == "A B; C D"
    assert format_person_name("") == ""


def test_without_remotes_the_remote_tab_says_how_to_add_one(
    qtbot: Any, window: MainWindow, send: Any
) -> None:
    browser = window.browser
    panel = browser.remote_panel
    qtbot.waitUntil(lambda: "No archive is configured" in panel.message_label.text())
    assert browser.remotes == []
    assert not panel.archive_combo.isEnabled()
    assert not panel.search_button.isEnabled()
    send(MR_FILES[:1])
    qtbot.waitUntil(lambda: browser.study_proxy.rowCount() == 1, timeout=5000)
    browser.study_view.selectRow(0)
    # A study is selected, but there is nowhere to send it.
    assert not browser.send_button.isEnabled()
    assert browser.send_selected() is None
    assert browser.send_button.toolTip() == "No remote AE is configured"


def test_show_removed_keeps_the_description_readable(
    qtbot: Any, window: MainWindow, send: Any
) -> None:
    send(MR_FILES[:2])
    browser = window.browser
    qtbot.waitUntil(lambda: browser.study_proxy.rowCount() == 1, timeout=5000)
    header = browser.study_view.horizontalHeader()
    before = header.sectionSize(DESCRIPTION_COLUMN)
    assert before >= browser.study_view.sizeHintForColumn(DESCRIPTION_COLUMN)
    browser.show_removed_box.setChecked(True)
    qtbot.waitUntil(
        lambda: not browser.study_view.isColumnHidden(REMOVED_COLUMN), timeout=5000
    )
    qtbot.wait(300)
    assert header.sectionSize(DESCRIPTION_COLUMN) >= before
    assert header.sectionSize(REMOVED_COLUMN) > 0
    browser.show_removed_box.setChecked(False)
    assert browser.study_view.isColumnHidden(REMOVED_COLUMN)
    assert header.sectionResizeMode(DESCRIPTION_COLUMN) == (
        QHeaderView.ResizeMode.Stretch
    )


def test_counts_keep_pace_with_a_long_transfer(
    qtbot: Any, window: MainWindow, core_setup: Any, tmp_path: Path
) -> None:
    """Objects arriving without pause (a retrieve, a reload) update the
    study's row as they come, not only once the stream stops."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    from tests.corpus import make_ct_series

    files = make_ct_series(tmp_path / "ct", 40)
    study = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    finished = threading.Event()

    def trickle() -> None:
        ae = AE(ae_title="TRICKLE")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", core_setup.storage_port)
        try:
            for path in files:
                assoc.send_c_store(pydicom.dcmread(path))
                time.sleep(0.08)  # well under the browser's pause of 200 ms
        finally:
            assoc.release()
            finished.set()

    sender = threading.Thread(target=trickle, daemon=True)
    seen_while_sending: set[int] = set()

    def count() -> int:
        rows = window.browser.study_model.rows
        return next(
            (
                int(r["NumberOfStudyRelatedInstances"])
                for r in rows
                if r["StudyInstanceUID"] == study
            ),
            0,
        )

    sender.start()
    while not finished.is_set():
        qtbot.wait(50)
        if not finished.is_set():
            seen_while_sending.add(count())
    sender.join(10)
    qtbot.waitUntil(lambda: count() == 40, timeout=5000)
    assert any(0 < n < 40 for n in seen_while_sending), seen_while_sending
