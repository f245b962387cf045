"""JiveX DICOM Query/Retrieve SCP Service (statement 3.2.2).

Patient Root and Study Root FIND, MOVE and GET at every level of the model,
hierarchical only, with the keys of tables 11 to 13 as matching or return
keys, sequences included (PS3.4 C.2.2.2.6). Matching runs in SQL
(:mod:`jivex_core.store.query`); retrieves are served by
:mod:`jivex_core.services.retrieve`. C-GET, which the statement does not
list, is offered because viewers behind firewalls depend on it: its storage
contexts are accepted only when the requestor takes the SCP role for them.

Character sets (statement section 5): pynetdicom hands the identifier over
decoded with its own Specific Character Set, and names match on their folded
form (:func:`jivex_core.charsets.fold`), so a query in one character set finds
names stored in any other. An answer whose text goes beyond ASCII carries the
Specific Character Set it is encoded in (PS3.4 C.4.1.1.3.2), the first of: the
query's own (the peer has shown it reads that one), the set of the stored
objects the values come from, UTF-8 (ISO_IR 192), which encodes everything and
is the answer wherever pydicom cannot encode the values in the others. The
query's set comes first because peers do not all read every set: Orthanc 1.10
refuses a whole answer in ISO 2022 IR 87 although it asked in UTF-8.

Identifiers are decoded strictly, as retrieve identifiers are
(:func:`~jivex_core.store.dicomfile.decode_identifier`, PS3.5 7.1 and 7.5):
a value running past the end, stray bytes, a delimiter out of place, an
element twice or out of order, an unknown VR or sequences nested too deeply
get C000 naming what is wrong, never a query on what pydicom could make of
the rest. Elements of groups
0000 to 0007 (command, File Meta) are no keys (PS3.4 C.4.1.1.3): they are
ignored, with a warning, and not returned.

Statuses (PS3.4 C.4.1.1.4): FF00 pending, 0000 done, FE00 cancelled, A900
identifier does not match the model (with an Error Comment), C000 unable to
process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.transport import ThreadedAssociationServer

from jivex_core.charsets import query_character_set, response_character_set
from jivex_core.config import Settings
from jivex_core.services.association import (
    ASSOCIATION_HANDLERS,
    RETRIEVE_ONLY,
    Peer,
    abort_at_shutdown,
    error_comment,
    make_ae,
    settle_incoming,
)
from jivex_core.services.find_responses import SYNTAXES, EncodedIdentifier, FlatAnswers
from jivex_core.services.retrieve import Retriever, holds_on, is_busy
from jivex_core.services.storage_scp import accepted_sop_classes
from jivex_core.sopclasses import DEFAULT_TRANSFER_SYNTAXES
from jivex_core.store import Store
from jivex_core.store.dicomfile import decode_identifier
from jivex_core.store.query import (
    KEYS,
    LEVELS,
    SEQUENCES,
    UNIQUE,
    QueryError,
    find,
    key_text,
    query_level,
    sequence_items,
    stored_character_sets,
)

logger = logging.getLogger(__name__)

STATUS_PENDING = 0xFF00
STATUS_PENDING_WARNING = 0xFF01
STATUS_CANCELLED = 0xFE00
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000
STATUS_NOT_AUTHORIZED = 0x0124

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
            PatientRootQueryRetrieveInformationModelMove,
            StudyRootQueryRetrieveInformationModelMove,
            PatientRootQueryRetrieveInformationModelGet,
            StudyRootQueryRetrieveInformationModelGet,
        ):
            self.ae.add_supported_context(model, _SYNTAXES)
        # C-GET sub-operations: we are the SCU of these storage contexts.
        syntaxes = settings.storage.transfer_syntaxes or list(DEFAULT_TRANSFER_SYNTAXES)
        storage = set(accepted_sop_classes(settings.storage.sop_classes))
        for sop_class in storage:
            self.ae.add_supported_context(
                sop_class, syntaxes, scu_role=True, scp_role=True
            )
        for cx in self.ae.supported_contexts:
            if cx.abstract_syntax in storage:
                setattr(cx, RETRIEVE_ONLY, True)
        self.ae.jivex_retriever = Retriever(settings, store)  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1]) if self._server else 0

    def start(self) -> None:
        """Bind and serve in background threads; OSError if the port is taken."""
        net = self.settings.network
        handlers = [
            *ASSOCIATION_HANDLERS,
            (evt.EVT_C_FIND, self._on_c_find),
            (evt.EVT_C_STORE, self._on_c_store),
        ]
        self._server = self.ae.start_server(
            (net.bind_address, net.query_port), block=False, evt_handlers=handlers
        )
        logger.info(
            "Query/Retrieve SCP '%s' listening on %s:%s",
            net.ae_title,
            net.bind_address,
            self.port,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let running requests finish, then abort.

        C-FIND, C-MOVE and C-GET requests in progress get up to *timeout*
        seconds (``network.shutdown_timeout``) to send their final response;
        associations with no request running have nothing to finish. Then
        every association left is aborted, the requestors' and those of
        the C-MOVE sub-operations, and retrieves send nothing more.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            holds_on(assoc) for assoc in self.ae.active_associations
        ):
            time.sleep(0.05)
        retriever: Retriever = self.ae.jivex_retriever  # type: ignore[attr-defined]
        busy = [a for a in self.ae.active_associations if is_busy(a)]
        if busy:
            logger.warning(
                "%d Query/Retrieve requests still running after %s s; aborted",
                len(busy),
                timeout,
            )
        retriever.stopping.set()
        left = list(self.ae.active_associations)
        for assoc in left:
            abort_at_shutdown(assoc)
        for assoc in retriever.scu_ae.active_associations:
            abort_at_shutdown(assoc)
        # Let the retrieves notice and log what they did not do.
        until = time.monotonic() + 2.0
        for assoc in left:
            assoc.join(max(0.0, until - time.monotonic()))
        logger.info("Query/Retrieve SCP stopped")

    def _on_c_store(self, event: evt.Event) -> Dataset:
        """Refuse objects sent to the query port: they belong on the other."""
        logger.error(
            "C-STORE from %s on the query port refused (0x0124)", Peer.of(event.assoc)
        )
        status = Dataset()
        status.Status = STATUS_NOT_AUTHORIZED
        status.ErrorComment = (
            f"send objects to port {self.settings.network.storage_port}"
        )
        return status

    def _on_c_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        """Answer one C-FIND request (PS3.4 C.4.1); never raises."""
        peer = Peer.of(event.assoc)
        patient_root = (
            event.request.AffectedSOPClassUID
            == PatientRootQueryRetrieveInformationModelFind
        )
        count = 0
        charsets: dict[tuple[int, int | None], list[str]] = {}
        syntax = event.context.transfer_syntax
        try:
            try:
                request = _decode(event.request.Identifier, syntax)
            except ValueError as exc:
                logger.warning("C-FIND from %s refused with 0xC000: %s", peer, exc)
                yield _failure(STATUS_UNABLE_TO_PROCESS, str(exc))
                return
            ignored = _drop_non_keys(request)
            if ignored:
                logger.warning(
                    "C-FIND from %s: %s in the identifier ignored: no data set "
                    "elements, so no keys",
                    peer,
                    ", ".join(ignored),
                )
            level, matching, wanted, unsupported = _check(request, patient_root)
            # PS3.4 C.4.1.1.4: FF01 when optional keys were not supported.
            pending = STATUS_PENDING_WARNING if unsupported else STATUS_PENDING
            if unsupported:
                logger.warning(
                    "C-FIND from %s: not matched on %s (answers carry 0xFF01)",
                    peer,
                    ", ".join(unsupported),
                )
            answers = self._flat_answers(request, level, syntax)
            for row in find(self.store.index.engine, level, matching, wanted):
                settle_incoming(event.assoc)
                if event.is_cancelled:
                    logger.info("C-FIND from %s cancelled after %d", peer, count)
                    yield STATUS_CANCELLED, None
                    return
                count += 1
                yield (
                    pending,
                    self._identifier(answers, request, level, row, charsets),
                )
        except QueryError as exc:
            # The peer's mistake, not ours: a warning.
            logger.warning("C-FIND from %s refused with 0xA900: %s", peer, exc)
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
        charsets: dict[tuple[int, int | None], list[str]] | None = None,
    ) -> Dataset:
        """The answer for *row*: already encoded when it is plain text."""
        if answers is None or (encoded := answers.encode(row)) is None:
            return self._response(request, level, row, charsets)
        return EncodedIdentifier(
            encoded,
            answers.syntax,
            lambda: self._response(request, level, row, charsets),
        )

    def _response(
        self,
        request: Dataset,
        level: str,
        row: dict[str, Any],
        charsets: dict[tuple[int, int | None], list[str]] | None = None,
    ) -> Dataset:
        ds = Dataset()
        texts: list[tuple[str, str]] = []
        sequences_plain = True
        for elem in request:
            keyword = elem.keyword
            if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
                continue
            value = row.get(keyword)
            if elem.VR == "SQ":
                seq, plain = _sequence(elem, row)
                sequences_plain = sequences_plain and plain
                ds.add_new(elem.tag, "SQ", seq)
                continue
            if value is None:
                ds.add_new(elem.tag, elem.VR, None)  # requested, not stored
                continue
            if isinstance(value, str):
                texts.append((elem.VR, value))
            ds.add_new(elem.tag, elem.VR, value)
        ds.QueryRetrieveLevel = level
        ds.RetrieveAETitle = self.settings.network.ae_title
        if not all(text.isascii() for _vr, text in texts):
            key = (row.get("_patient_pk"), row.get("_study_pk"))
            if charsets is None:
                charsets = {}
            if key not in charsets:
                charsets[key] = (
                    stored_character_sets(self.store.index.engine, *key)
                    if key[0] is not None
                    else []
                )
            asked = query_character_set(request.get("SpecificCharacterSet"))
            chosen = response_character_set(texts, [asked, *charsets[key]])
            if chosen is not None:
                ds.SpecificCharacterSet = chosen
        if not sequences_plain:
            # Text inside items: UTF-8 carries it whatever else is returned.
            ds.SpecificCharacterSet = "ISO_IR 192"
        return ds


def _sequence(elem: DataElement, row: dict[str, Any]) -> tuple[Sequence, bool]:
    """A requested sequence key's value, and whether it is all ASCII.

    The stored items, with the sub-keys the request's item asks for, or with
    all that the index keeps of them when the item is empty or absent. A
    sequence the index does not hold comes back empty.
    """
    key = SEQUENCES.get(elem.keyword)
    if key is None:
        return Sequence(), True
    request = elem.value[0] if elem.value else None
    return _items(sequence_items(elem.keyword, row), request, key.items)


def _items(
    stored: list[dict[str, Any]], request: Dataset | None, tree: dict[str, Any]
) -> tuple[Sequence, bool]:
    out = Sequence()
    plain = True
    for entry in stored:
        item = Dataset()
        if request is None or not len(request):
            asked = [(sub, None) for sub in tree if sub in entry]
        else:
            asked = [(sub.keyword, sub) for sub in request]
        for keyword, sub in asked:
            if keyword not in tree:
                # Requested, not kept by the index: present and empty.
                empty = Sequence() if sub.VR == "SQ" else None
                item.add_new(sub.tag, sub.VR, empty)
                continue
            tag = tag_for_keyword(keyword)
            if tree[keyword] is None:
                value = entry.get(keyword, "")
                plain = plain and value.isascii()
                item.add_new(tag, dictionary_VR(tag), value)
                continue
            asks_items = sub is not None and sub.VR == "SQ" and sub.value
            nested = sub.value[0] if asks_items else None
            seq, nested_plain = _items(entry.get(keyword, []), nested, tree[keyword])
            plain = plain and nested_plain
            item.add_new(tag, "SQ", seq)
        out.append(item)
    return out, plain


def _failure(status: int, comment: str) -> tuple[Dataset, None]:
    """A failure response: the Error Comment goes in the command set."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = error_comment(comment)
    return ds, None


def _decode(identifier: Any, syntax: str) -> Dataset:
    """The request's identifier, decoded strictly; ValueError names what is
    wrong (a request without one has no elements at all)."""
    data = identifier.getvalue() if identifier is not None else b""
    ts = UID(str(syntax))
    return decode_identifier(data, ts.is_implicit_VR, ts.is_little_endian)


def _tag_name(elem: DataElement) -> str:
    """An element as logs and comments name it: keyword, else its tag."""
    tag = elem.tag
    return elem.keyword or f"({tag.group:04X},{tag.element:04X})"


def _drop_non_keys(request: Dataset) -> list[str]:
    """Remove the elements of groups 0000 to 0007 from *request*; return
    their names. Command and File Meta elements are not in an identifier's
    data set (PS3.4 C.4.1.1.3), so they are neither keys nor answered."""
    dropped = [tag for tag in request.keys() if int(tag) >> 16 < 0x0008]
    names = [_tag_name(request[tag]) for tag in dropped]
    for tag in dropped:
        del request[tag]
    return names


def _article(level: str) -> str:
    return "an" if level == "IMAGE" else "a"


def _check(
    request: Dataset, patient_root: bool
) -> tuple[str, dict[str, str], set[str], list[str]]:
    """Validate a hierarchical query (PS3.4 C.4.1.2.2); split its keys into
    matching keys, requested keys and keys with a value we cannot match."""
    level = query_level(request.get("QueryRetrieveLevel"), patient_root)
    depth = LEVELS.index(level)
    matching: dict[str, str] = {}
    wanted: set[str] = set()
    unsupported: list[str] = []
    for elem in request:
        keyword = elem.keyword
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        key = KEYS.get(keyword)
        wanted.add(keyword)
        if key is None or (elem.VR == "SQ" and keyword not in SEQUENCES):
            # Not supported: returned empty; with a value, it is an optional
            # key we did not match on, which the pending status says.
            if elem.VR != "SQ" and key_text(elem.value):
                unsupported.append(_tag_name(elem))
            continue
        if LEVELS.index(key.level) > depth:
            raise QueryError(f"{keyword} is below the {level} level")
        if elem.VR == "SQ":
            _check_sequence(elem, matching, wanted)
            continue
        text = key_text(elem.value)
        if text:
            matching[keyword] = text
    # Unique keys of the levels above the query level (PS3.4 C.4.1.2.2.1).
    above = LEVELS[(0 if patient_root else 1) : depth]
    for upper in above:
        unique = UNIQUE[upper]
        value = matching.get(unique, "")
        if not value or "*" in value or "?" in value or "\\" in value:
            raise QueryError(f"{_article(level)} {level} query needs a single {unique}")
    return level, matching, wanted, unsupported


def _check_sequence(
    elem: DataElement, matching: dict[str, str], wanted: set[str]
) -> None:
    """Split a sequence key (PS3.4 C.2.2.2.6): one item of sub-keys."""
    keyword = elem.keyword
    key = SEQUENCES[keyword]
    items = elem.value or []
    if len(items) > 1:
        raise QueryError(f"{keyword} holds {len(items)} items; a key holds one")
    wanted.update(key.columns(keyword))
    for sub in items[0] if items else ():
        if sub.keyword in key.matching and sub.VR != "SQ":
            text = key_text(sub.value)
            if text:
                matching[f"{keyword}.{sub.keyword}"] = text
