"""JiveX DICOM Query/Retrieve SCP Service (statement 3.2.2): C-FIND.

Patient Root and Study Root FIND at every level of the model, hierarchical
only, with the keys of table 11 as matching or return keys. Matching runs in
SQL (:mod:`jivex_core.store.query`). Retrieval (C-MOVE, C-GET) is not part of
this version: those contexts are not accepted.

Statuses (PS3.4 C.4.1.1.4): FF00 pending, 0000 done, FE00 cancelled, A900
identifier does not match the model (with an Error Comment), C000 unable to
process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.transport import ThreadedAssociationServer

from jivex_core.config import Settings
from jivex_core.services.association import (
    ASSOCIATION_HANDLERS,
    Peer,
    close_socket,
    make_ae,
)
from jivex_core.services.find_responses import SYNTAXES, EncodedIdentifier, FlatAnswers
from jivex_core.store import Store
from jivex_core.store.query import KEYS, LEVELS, UNIQUE, QueryError, find

logger = logging.getLogger(__name__)

STATUS_PENDING = 0xFF00
STATUS_CANCELLED = 0xFE00
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000

_QUERY_RETRIEVE_LEVEL = 0x00080052
_RETRIEVE_AE_TITLE = 0x00080054
_NOT_ECHOED = (_QUERY_RETRIEVE_LEVEL, 0x00080005)  # and Specific Character Set

_SYNTAXES = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
]


class QueryRetrieveSCP:
    """The Q/R SCP on the query port; one thread per association."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._server: ThreadedAssociationServer | None = None
        self.ae = make_ae(settings)
        self.ae.add_supported_context("1.2.840.10008.1.1", _SYNTAXES)
        for model in (
            PatientRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelFind,
        ):
            self.ae.add_supported_context(model, _SYNTAXES)

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1]) if self._server else 0

    def start(self) -> None:
        """Bind and serve in background threads; OSError if the port is taken."""
        net = self.settings.network
        handlers = [*ASSOCIATION_HANDLERS, (evt.EVT_C_FIND, self._on_c_find)]
        self._server = self.ae.start_server(
            (net.bind_address, net.query_port), block=False, evt_handlers=handlers
        )
        logger.info(
            "Query/Retrieve SCP '%s' listening on %s:%s",
            net.ae_title,
            net.bind_address,
            self.port,
        )

    def stop(self) -> None:
        """Stop accepting and cut every association (queries are short)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        for assoc in self.ae.active_associations:
            close_socket(assoc)
        logger.info("Query/Retrieve SCP stopped")

    def _on_c_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        """Answer one C-FIND request (PS3.4 C.4.1); never raises."""
        peer = Peer.of(event.assoc)
        patient_root = (
            event.request.AffectedSOPClassUID
            == PatientRootQueryRetrieveInformationModelFind
        )
        count = 0
        syntax = event.context.transfer_syntax
        try:
            request = event.identifier
            level, matching, wanted = _check(request, patient_root)
            answers = self._flat_answers(request, level, syntax)
            for row in find(self.store.index.engine, level, matching, wanted):
                if event.is_cancelled:
                    logger.info("C-FIND from %s cancelled after %d", peer, count)
                    yield STATUS_CANCELLED, None
                    return
                count += 1
                yield STATUS_PENDING, self._identifier(answers, request, level, row)
        except QueryError as exc:
            logger.error("C-FIND from %s refused with 0xA900: %s", peer, exc)
            yield _failure(STATUS_IDENTIFIER_MISMATCH, str(exc))
            return
        except Exception as exc:
            logger.exception("C-FIND from %s failed", peer)
            yield _failure(STATUS_UNABLE_TO_PROCESS, f"query failed: {exc}")
            return
        logger.info(
            "C-FIND from %s at %s level: %d matches (0x0000)", peer, level, count
        )

    def _flat_answers(
        self, request: Dataset, level: str, syntax: str
    ) -> FlatAnswers | None:
        """What writes this request's answers as bytes; None: pydicom does.

        The same elements as :meth:`_response`. While identifiers are
        logged, pynetdicom needs the Dataset itself.
        """
        if self.settings.logging.dump_datasets or str(syntax) not in SYNTAXES:
            return None
        elements = [
            (elem.tag, elem.VR, elem.keyword)
            for elem in request
            if elem.tag not in _NOT_ECHOED
            # Group lengths are never written (PS3.5 7.2).
            and not (elem.tag.element == 0 and elem.tag.group > 6)
        ]
        fixed = {
            _QUERY_RETRIEVE_LEVEL: ("CS", level),
            _RETRIEVE_AE_TITLE: ("AE", self.settings.network.ae_title),
        }
        return FlatAnswers(elements, fixed, syntax)

    def _identifier(
        self,
        answers: FlatAnswers | None,
        request: Dataset,
        level: str,
        row: dict[str, Any],
    ) -> Dataset:
        """The answer for *row*: already encoded when it is plain text."""
        if answers is None or (encoded := answers.encode(row)) is None:
            return self._response(request, level, row)
        return EncodedIdentifier(
            encoded, answers.syntax, lambda: self._response(request, level, row)
        )

    def _response(self, request: Dataset, level: str, row: dict[str, Any]) -> Dataset:
        ds = Dataset()
        ascii_only = True
        for elem in request:
            keyword = elem.keyword
            if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
                continue
            value = row.get(keyword)
            if elem.VR == "SQ":
                ds.add_new(elem.tag, "SQ", Sequence())
                continue
            if value is None:
                ds.add_new(elem.tag, elem.VR, None)  # requested, not stored
                continue
            if isinstance(value, str) and not value.isascii():
                ascii_only = False
            ds.add_new(elem.tag, elem.VR, value)
        ds.QueryRetrieveLevel = level
        ds.RetrieveAETitle = self.settings.network.ae_title
        if not ascii_only:
            # PS3.4 C.4.1.1.3.2: the character set of what is returned.
            ds.SpecificCharacterSet = "ISO_IR 192"
        return ds


def _failure(status: int, comment: str) -> tuple[int, Dataset]:
    ds = Dataset()
    ds.ErrorComment = comment[:64]
    return status, ds


def _check(
    request: Dataset, patient_root: bool
) -> tuple[str, dict[str, str], set[str]]:
    """Validate a hierarchical query (PS3.4 C.4.1.2.2); split its keys."""
    level = str(request.get("QueryRetrieveLevel", "") or "").strip().upper()
    allowed = LEVELS if patient_root else LEVELS[1:]
    if level not in allowed:
        raise QueryError(
            f"QueryRetrieveLevel '{level}' is not one of {', '.join(allowed)}"
        )
    depth = LEVELS.index(level)
    matching: dict[str, str] = {}
    wanted: set[str] = set()
    for elem in request:
        keyword = elem.keyword
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        key = KEYS.get(keyword)
        wanted.add(keyword)
        if key is None or elem.VR == "SQ":
            continue  # not supported: returned empty
        if LEVELS.index(key.level) > depth:
            raise QueryError(f"{keyword} is below the {level} level")
        value = elem.value
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        matching[keyword] = text
    # Unique keys of the levels above the query level (PS3.4 C.4.1.2.2.1).
    above = LEVELS[(0 if patient_root else 1) : depth]
    for upper in above:
        unique = UNIQUE[upper]
        value = matching.get(unique, "")
        if not value or "*" in value or "?" in value or "\\" in value:
            raise QueryError(
                f"a {level} query needs a single {unique} (the {upper} level's "
                "unique key)"
            )
    return level, matching, wanted
