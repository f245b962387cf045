"""Where a C-FIND's time goes on our side, without the network.

Runs the Q/R SCP's C-FIND handler in this process on an existing data folder
(``bench_qr_find.py --work DIR`` leaves one in ``DIR/jivex``) and does for
each answer what pynetdicom does before a response reaches the socket:
encode the identifier (Explicit VR Little Endian) and the C-FIND-RSP command
set. The DUL threads, the socket and the client are left out, so the figure
is the server's CPU cost per query; ``--profile`` prints where it goes
(cProfile, cumulative).

Usage::

    .venv/bin/python benchmarks/profile_qr_find.py DIR/jivex [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import service_class
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_qr_find import KEY_SETS, queries

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jivex_core.config import Settings
from jivex_core.services.find_responses import pending_find_response
from jivex_core.services.qr_scp import QueryRetrieveSCP
from jivex_core.store import Store


class _Event:
    """What the handler reads of pynetdicom's event."""

    def __init__(self, identifier: Dataset) -> None:
        self.identifier = identifier
        self.is_cancelled = False
        self.context = _Context()
        self.assoc = _Assoc()
        self.request = C_FIND()
        self.request.AffectedSOPClassUID = StudyRootQueryRetrieveInformationModelFind


class _Context:
    transfer_syntax = ExplicitVRLittleEndian


class _Assoc:
    class _Who:
        ae_title = "PROFILE"
        address = "127.0.0.1"
        port = 0
        primitive = None

    requestor = acceptor = _Who()


def one_query(scp: QueryRetrieveSCP, keys: dict[str, str], returned: Any) -> int:
    """Answer one study-level C-FIND as far as the bytes; the answer count."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for attr in returned:
        setattr(ds, attr, keys.get(attr, ""))
    count = 0
    for status, ident in scp._on_c_find(_Event(ds)):
        rsp = C_FIND()
        rsp.MessageIDBeingRespondedTo = 1
        rsp.AffectedSOPClassUID = StudyRootQueryRetrieveInformationModelFind
        rsp.Status = status
        if ident is not None:
            rsp.Identifier = BytesIO(service_class.encode(ident, False, True))
            count += 1
        if pending_find_response(rsp, 1, 32768) is None:
            msg = C_FIND_RSP()
            msg.primitive_to_message(rsp)
            for _ in msg.encode_msg(1, 32768):
                pass
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--patient-id", default="")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    store = Store(args.data, fsync=False)
    scp = QueryRetrieveSCP(Settings(), store)
    patient_id = args.patient_id
    if not patient_id:
        with store.index.engine.connect() as conn:
            patient_id = conn.exec_driver_sql(
                "SELECT PatientID FROM patient ORDER BY pk LIMIT 1 OFFSET "
                "(SELECT count(*) / 2 FROM patient)"
            ).scalar_one()
    profiler = cProfile.Profile() if args.profile else None
    for name, keys in queries(patient_id).items():
        for key_set, returned in KEY_SETS.items():
            times = []
            count = 0
            for _ in range(args.repeats):
                begin = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                count = one_query(scp, keys, returned)
                if profiler is not None:
                    profiler.disable()
                times.append((time.perf_counter() - begin) * 1000)
            print(
                f"{name:18} {key_set:8} {statistics.median(times):7.1f} ms "
                f"({count} answers)"
            )
    store.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
