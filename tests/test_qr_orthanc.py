"""Orthanc (another implementation) queries and retrieves from our Q/R SCP.

Orthanc's REST API drives it: ``/modalities/jivex/query`` for C-FIND and
``/queries/{id}/retrieve`` for C-MOVE, with Orthanc itself as the move
destination (our server knows it through ``--remote``).

Orthanc 1.10 has no option to bind to one address: it runs on kernel-chosen
free ports with remote access refused on its REST side, and is stopped when
the module ends. PEERS.md: Orthanc needs TCP_NODELAY=1 and UTF-8 as default
encoding to compare names.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.corpus import query_archive_files
from tests.helpers import (
    JivexServer,
    free_port,
    run_jivex,
    start_orthanc,
)

pytestmark = pytest.mark.interop

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(port: int, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    with _NO_PROXY.open(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    root = tmp_path_factory.mktemp("orthanc-qr")
    files = query_archive_files()
    assert run_jivex("import", "--data", str(root / "data"), *files).returncode == 0
    dicom_port, http_port = free_port(), free_port()
    jivex = JivexServer(
        root / "data", extra=["--remote", f"ORTHANC@127.0.0.1:{dicom_port}"]
    ).start()
    orthanc = start_orthanc(
        root, dicom_port, http_port, {"jivex": ["JIVEX", "127.0.0.1", jivex.query_port]}
    )
    try:
        yield jivex, http_port
    finally:
        orthanc.terminate()
        orthanc.wait(30)
        jivex.stop()


def _query(http_port: int, level: str, query: dict) -> list[dict]:
    started = _http(
        http_port, "/modalities/jivex/query", {"Level": level, "Query": query}
    )
    return _http(http_port, f"/queries/{started['ID']}/answers?expand&simplify")


def test_orthanc_finds_studies_by_wildcard_name(peers):
    _, http_port = peers
    answers = _query(
        http_port,
        "Study",
        {
            "PatientName": "doe*",
            "PatientID": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedInstances": "",
        },
    )
    assert [a["PatientID"] for a in answers] == ["583295"]
    assert answers[0]["ModalitiesInStudy"] == "MR"
    assert answers[0]["NumberOfStudyRelatedInstances"] == "9"


def test_orthanc_finds_by_date_range_and_gets_unicode_names(peers):
    _, http_port = peers
    answers = _query(
        http_port,
        "Study",
        {"StudyDate": "20000101-20100101", "PatientID": "", "PatientName": ""},
    )
    assert [a["PatientID"] for a in answers] == ["1CT1"]
    named = _query(http_port, "Study", {"PatientID": "H31EXAMPLE", "PatientName": ""})
    assert named[0]["PatientName"] == "Yamada^Tarou=山田^太郎=やまだ^たろう"


def test_orthanc_walks_down_to_series(peers):
    _, http_port = peers
    (study,) = _query(
        http_port, "Study", {"PatientID": "583295", "StudyInstanceUID": ""}
    )
    series = _query(
        http_port,
        "Series",
        {
            "StudyInstanceUID": study["StudyInstanceUID"],
            "SeriesInstanceUID": "",
            "Modality": "",
            "NumberOfSeriesRelatedInstances": "",
        },
    )
    assert len(series) == 1
    assert series[0]["Modality"] == "MR"
    assert series[0]["NumberOfSeriesRelatedInstances"] == "9"


def test_orthanc_retrieves_a_study_with_c_move(peers):
    jivex, http_port = peers
    started = _http(
        http_port,
        "/modalities/jivex/query",
        {"Level": "Study", "Query": {"PatientID": "583295"}},
    )
    job = _http(
        http_port,
        f"/queries/{started['ID']}/retrieve",
        {"TargetAet": "ORTHANC", "Synchronous": True},
    )
    assert job is not None
    studies = _http(http_port, "/studies?expand")
    (study,) = [
        s for s in studies if s["PatientMainDicomTags"]["PatientID"] == "583295"
    ]
    instances = _http(http_port, f"/studies/{study['ID']}/instances")
    ours = {
        r["SOPInstanceUID"]
        for r in jivex.ls()
        if r["StudyInstanceUID"] == study["MainDicomTags"]["StudyInstanceUID"]
    }
    assert {i["MainDicomTags"]["SOPInstanceUID"] for i in instances} == ours
    assert len(ours) == 9
    assert "to 'ORTHANC' at STUDY level: 9 completed" in jivex.log()


def test_orthanc_retrieve_to_an_unknown_aet_fails(peers):
    jivex, http_port = peers
    started = _http(
        http_port,
        "/modalities/jivex/query",
        {"Level": "Study", "Query": {"PatientID": "1CT1"}},
    )
    with pytest.raises(urllib.error.HTTPError):
        _http(
            http_port,
            f"/queries/{started['ID']}/retrieve",
            {"TargetAet": "ELSEWHERE", "Synchronous": True},
        )
    assert "Move Destination 'ELSEWHERE' is not a known AE" in jivex.log()
