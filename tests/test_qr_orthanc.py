"""Orthanc (another implementation) queries our Q/R SCP over its REST API.

Orthanc 1.10 has no option to bind to one address: it runs on kernel-chosen
free ports with remote access refused on its REST side, and is stopped when
the module ends. PEERS.md: Orthanc needs TCP_NODELAY=1 and UTF-8 as default
encoding to compare names.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest

from tests.corpus import query_archive_files
from tests.helpers import (
    JivexServer,
    free_port,
    peer_env,
    run_jivex,
    wait_for_port,
)

pytestmark = pytest.mark.interop

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
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
    jivex = JivexServer(root / "data").start()
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "jivex-test",
        "StorageDirectory": str(root / "orthanc-storage"),
        "IndexDirectory": str(root / "orthanc-index"),
        "Plugins": [],
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DefaultEncoding": "Utf8",
        "DicomModalities": {"jivex": ["JIVEX", "127.0.0.1", jivex.query_port]},
        "SaveJobs": False,
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = open(root / "orthanc.log", "wb")
    orthanc = subprocess.Popen(
        [ORTHANC, str(root / "orthanc.json")], stdout=log, stderr=log, env=peer_env()
    )
    try:
        wait_for_port(http_port, orthanc, 60)
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
