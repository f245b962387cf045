"""What every DICOM service of ours does to its associations.

TCP_NODELAY on each socket, the timeouts and PDU size of table 42, and one
INFO line per association event with the peer's AE title and address.
"""

from __future__ import annotations

import copy
import logging
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, _config, acse, dimse, dul, evt, transport
from pynetdicom import association as association_module
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT
from pynetdicom.presentation import PresentationContext, negotiate_as_acceptor

from jivex_core.config import Settings
from jivex_core.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

logger = logging.getLogger(__name__)

#: pynetdicom needs a number; the statement's default is "unlimited".
UNLIMITED_ASSOCIATIONS = 10_000


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of an association, for handlers and logs."""

    calling_ae: str
    called_ae: str
    host: str
    port: int

    @classmethod
    def of(cls, assoc: Association) -> Peer:
        """The peer of *assoc* as seen from our side."""
        req = assoc.requestor
        # The called AE title the peer asked for (the statement ignores it
        # unless configured), not our own.
        request = getattr(req, "primitive", None)
        called = getattr(request, "called_ae_title", None) or assoc.acceptor.ae_title
        return cls(
            str(req.ae_title).strip(),
            str(called).strip(),
            str(req.address),
            int(req.port or 0),
        )

    def __str__(self) -> str:
        return f"'{self.calling_ae}' at {self.host}:{self.port}"


#: Error Comment (0000,0902) is LO: at most 64 characters (PS3.5 6.2).
ERROR_COMMENT_LENGTH = 64


def error_comment(text: str) -> str:
    """*text* as an Error Comment: LO's repertoire and length.

    The command set is always in the default repertoire (PS3.7 6.3.1), so
    what is beyond printable ASCII becomes '?', and a backslash, LO's value
    delimiter, '/'. Text longer than 64 characters is cut at the last word
    boundary that leaves room for "...": messages put what matters first.
    """
    clean = "".join(
        "/" if c == "\\" else c if " " <= c <= "~" else "?" for c in text.strip()
    )
    if len(clean) <= ERROR_COMMENT_LENGTH:
        return clean
    room = ERROR_COMMENT_LENGTH - 3
    cut = clean[: room + 1].rsplit(" ", 1)[0] if " " in clean[:room] else ""
    if len(cut) > room or len(cut) < room // 2:
        cut = clean[:room]  # one very long word: cut it
    return cut.rstrip(" ,;:(-") + "..."


def set_nodelay(assoc: Association) -> None:
    """Switch Nagle's algorithm off on the association's socket.

    Without it, a DIMSE exchange of small PDUs waits for the peer's delayed
    ACK (about 40 ms per message on Linux).
    """
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            logger.debug("TCP_NODELAY could not be set: %s", exc)


def close_socket(assoc: Association) -> None:
    """Cut an association's connection, waking its threads from any read."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


def abort_at_shutdown(assoc: Association) -> None:
    """Abort *assoc* for a server that stops, then cut its connection.

    abort() waits for the peer's side of the state machine: it gets a
    moment in its own thread before the socket is cut anyway.
    """
    if assoc.is_established:
        if assoc.is_requestor:
            # One of ours (a C-MOVE sub-association): name the peer we called.
            peer = assoc.acceptor
            who = f"'{str(peer.ae_title).strip()}' at {peer.address}:{peer.port}"
        else:
            who = str(Peer.of(assoc))
        logger.warning("Aborting association with %s at shutdown", who)
        aborter = threading.Thread(target=assoc.abort, daemon=True)
        aborter.start()
        aborter.join(2.0)
    close_socket(assoc)
    if assoc.is_requestor:
        # A sender waiting for its C-STORE response would wait out the DIMSE
        # timeout: pynetdicom wakes it only for aborts the peer started.
        assoc.dimse.msg_queue.put((None, None))


def _on_conn_open(event: evt.Event) -> None:
    set_nodelay(event.assoc)


def _on_accepted(event: evt.Event) -> None:
    peer = Peer.of(event.assoc)
    accepted = event.assoc.accepted_contexts
    logger.info(
        "Association accepted from %s to '%s': %d of %d presentation contexts, "
        "peer max PDU %s",
        peer,
        peer.called_ae,
        len(accepted),
        len(accepted) + len(event.assoc.rejected_contexts),
        event.assoc.requestor.maximum_length,
    )
    if logger.isEnabledFor(logging.DEBUG):
        for cx in accepted:
            logger.debug(
                "  context %s: %s with %s",
                cx.context_id,
                cx.abstract_syntax.name,
                cx.transfer_syntax[0].name,
            )


def _on_rejected(event: evt.Event) -> None:
    logger.info("Association rejected from %s", Peer.of(event.assoc))


def _on_released(event: evt.Event) -> None:
    logger.info("Association released by %s", Peer.of(event.assoc))


def _on_aborted(event: evt.Event) -> None:
    logger.info("Association aborted with %s", Peer.of(event.assoc))


#: PS3.8 9.3.8: A-ABORT source; PS3.8 table 9-26: A-P-ABORT reasons.
_ABORT_SOURCES = {0: "service user", 1: "reserved", 2: "service provider"}
_PROVIDER_REASONS = {
    0: "reason not specified",
    1: "unrecognized PDU",
    2: "unexpected PDU",
    4: "unrecognized PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}


def _on_acse_recv(event: evt.Event) -> None:
    primitive = event.primitive
    if isinstance(primitive, A_ABORT):
        source = _ABORT_SOURCES.get(primitive.abort_source, primitive.abort_source)
        logger.info("A-ABORT from %s (source: %s)", Peer.of(event.assoc), source)
    elif isinstance(primitive, A_P_ABORT):
        reason = _PROVIDER_REASONS.get(
            primitive.provider_reason, primitive.provider_reason
        )
        logger.info("A-P-ABORT with %s (reason: %s)", Peer.of(event.assoc), reason)


ASSOCIATION_HANDLERS: list[tuple[Any, Any]] = [
    (evt.EVT_CONN_OPEN, _on_conn_open),
    (evt.EVT_ACCEPTED, _on_accepted),
    (evt.EVT_REJECTED, _on_rejected),
    (evt.EVT_RELEASED, _on_released),
    (evt.EVT_ABORTED, _on_aborted),
    (evt.EVT_ACSE_RECV, _on_acse_recv),
]


#: Marks a supported context that is accepted only when the requestor takes
#: the SCP role for it (storage contexts on the query port, for C-GET).
RETRIEVE_ONLY = "jivex_retrieve_only"


def _negotiate_in_requestor_order(
    rq_contexts: list[PresentationContext],
    ac_contexts: list[PresentationContext],
    roles: Any = None,
) -> tuple[list[PresentationContext], list[Any]]:
    """Accept, per proposed context, the first proposed syntax we support.

    The statement (3.2.1.3) chooses "the first supported transfer syntax for
    each presentation context", i.e. the requestor's preference; pynetdicom
    would choose by the order of our own list. Each proposed context is
    negotiated on its own, so two contexts with the same abstract syntax and
    different syntaxes are each answered in their own order. Contexts marked
    :data:`RETRIEVE_ONLY` are refused unless the requestor asked for the SCP
    role, so nobody stores objects on the query port by mistake.
    """
    cached = getattr(_negotiated, "result", None)
    if cached is not None and cached[0] is rq_contexts:
        return cached[1]
    ours = {cx.abstract_syntax: cx for cx in ac_contexts}
    results: list[PresentationContext] = []
    reply_roles: dict[str, Any] = {}
    for rq in rq_contexts:
        supported = ours.get(rq.abstract_syntax)
        if getattr(supported, RETRIEVE_ONLY, False):
            requested = (roles or {}).get(rq.abstract_syntax, (None, None))
            if not requested[1]:
                # Only usable for C-GET sub-operations: we send, the peer
                # must have asked to be the SCP (PS3.4 C.4.3.1).
                supported = None
        candidates: list[PresentationContext] = []
        if supported is not None:
            cx = PresentationContext()
            cx.abstract_syntax = supported.abstract_syntax
            cx.transfer_syntax = [
                ts for ts in rq.transfer_syntax if ts in supported.transfer_syntax
            ] or list(supported.transfer_syntax)
            cx.scu_role = supported.scu_role
            cx.scp_role = supported.scp_role
            candidates.append(cx)
        accepted, role_items = negotiate_as_acceptor([rq], candidates, roles)
        results.extend(accepted)
        for item in role_items:
            reply_roles[item.sop_class_uid] = item
    return sorted(results, key=lambda cx: cx.context_id), list(reply_roles.values())


# pynetdicom's ACSE looks the negotiation function up in its own namespace.
acse.negotiate_as_acceptor = _negotiate_in_requestor_order

_negotiated = threading.local()
_negotiate_as_acceptor = acse.ACSE._negotiate_as_acceptor


def _negotiate_or_reject(self: acse.ACSE) -> None:
    """Reject an association of which no presentation context is accepted.

    The statement (3.2.1.4, 3.2.2.4) accepts "any association for which at
    least one presentation context is accepted"; pynetdicom would accept the
    others too and leave the peer with nothing to do. The rejection is
    permanent, by the service user, with no reason given (PS3.8 9.3.4).
    """
    request = self.requestor.primitive
    roles = {
        uid: (item.scu_role, item.scp_role)
        for uid, item in self.requestor.role_selection.items()
    }
    proposed = request.presentation_context_definition_list
    result = _negotiate_in_requestor_order(
        proposed, self.acceptor.supported_contexts, roles
    )
    if not any(cx.result == 0x00 for cx in result[0]):
        self.requestor.ae_title = request.calling_ae_title
        logger.info(
            "Association from '%s' rejected: none of its %d presentation "
            "contexts is supported",
            str(request.calling_ae_title).strip(),
            len(proposed),
        )
        self.send_reject(0x01, 0x01, 0x01)
        evt.trigger(self.assoc, evt.EVT_REJECTED, {})
        self.assoc.kill()
        return
    _negotiated.result = (proposed, result)
    try:
        _negotiate_as_acceptor(self)
    finally:
        _negotiated.result = None


acse.ACSE._negotiate_as_acceptor = _negotiate_or_reject  # type: ignore[method-assign]


class AdaptivePoll:
    """A ``time`` stand-in whose ``sleep`` polls fast right after traffic.

    pynetdicom's DUL and association reactors poll their queues with fixed
    1 ms sleeps, so each DIMSE exchange waits about a millisecond for nothing
    (a sixth of the time a CT slice takes). A thread that was busy since its
    last sleep is polled every *fast* seconds for *streak* rounds; a thread
    that stays idle goes back to the requested delay, so idle associations
    cost no more CPU than before.
    """

    def __init__(
        self, fast: float = 0.0002, streak: int = 100, busy: float = 0.0003
    ) -> None:
        self.fast = fast
        self.streak = streak
        # An idle reactor turn takes tens of microseconds; decoding a PDU or
        # running a handler takes longer than *busy* seconds.
        self.busy = busy
        self._local = threading.local()

    def sleep(self, seconds: float) -> None:
        """Sleep *seconds*, or less while the calling thread is busy."""
        local = self._local
        now = time.perf_counter()
        if now - getattr(local, "woke", 0.0) > self.busy:
            local.idle = 0
        else:
            local.idle = getattr(local, "idle", 0) + 1
        time.sleep(min(seconds, self.fast) if local.idle < self.streak else seconds)
        local.woke = time.perf_counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# Both reactors look ``time`` up in their own module namespace.
dul.time = association_module.time = AdaptivePoll()  # type: ignore[assignment]


def _copy_contexts(contexts: Any) -> Any:
    """Copy the acceptor's contexts for a new association, cheaply.

    pynetdicom deep-copies every supported context for each association:
    with every storage class and transfer syntax that is thousands of UID
    objects, about 80 ms per association, which a modality that opens one
    association per image pays each time. The copies are only read during
    negotiation, so each context is copied and its syntax list shared.
    """
    if isinstance(contexts, list) and all(
        isinstance(cx, PresentationContext) for cx in contexts
    ):
        return [copy.copy(cx) for cx in contexts]
    return copy.deepcopy(contexts)


# The only deepcopy of pynetdicom's transport module is that one.
transport.deepcopy = _copy_contexts


_get_msg = dimse.DIMSEServiceProvider.get_msg


def _get_msg_leaving_responses(
    self: dimse.DIMSEServiceProvider, block: bool = False
) -> Any:
    """``get_msg``, but the reactor of an association we opened never takes
    a response off the queue.

    pynetdicom pauses that reactor while a send method waits for its
    response, with a handshake that can let the reactor run one more turn:
    it then takes the C-STORE-RSP, drops it as "unexpected", and the sender
    waits for the DIMSE timeout. Only the send methods take responses with
    a blocking get; the reactor's non-blocking one leaves them in place.
    """
    if block or not getattr(self.assoc, "is_requestor", False):
        return _get_msg(self, block)
    queue_ = self.msg_queue
    with queue_.mutex:
        if not queue_.queue:
            return None, None
        context_id, msg = queue_.queue[0]
        # Responses, and the (None, None) the state machine queues when the
        # association ends, are for the sender waiting on its blocking get.
        if msg is None or not msg.is_valid_request:
            return None, None
        queue_.queue.popleft()
        queue_.not_full.notify()
        return context_id, msg


dimse.DIMSEServiceProvider.get_msg = _get_msg_leaving_responses  # type: ignore[method-assign]


class CancelRequests(dict):
    """The C-CANCELs of an association by Message ID, each with its place in
    the order of arrival (PS3.7 9.3.2.3: a C-CANCEL refers to the request
    with that Message ID that is still being served).

    pynetdicom empties its table of cancels before and after serving each
    request, so that a late cancel of a finished request cannot stop the next
    one with the same Message ID. The reactor stores cancels as they arrive,
    though, so a cancel sent right behind its request, or behind the next
    request while the previous answer is still going out, was sometimes
    emptied away before the request it names was served. Here nothing is
    emptied: a cancel counts for a request when it arrived after that request
    (:meth:`forget_before` drops the older ones when a request is served).
    """

    def __init__(self, provider: dimse.DIMSEServiceProvider) -> None:
        super().__init__()
        self.provider = provider
        self.arrival: dict[int, int] = {}

    def __setitem__(self, msg_id: int, primitive: Any) -> None:
        self.arrival[msg_id] = getattr(self.provider, "jivex_received", 0)
        super().__setitem__(msg_id, primitive)

    def forget_before(self, order: int) -> None:
        """Drop the cancels that arrived before the request received as the
        *order*-th message: they were meant for an earlier request."""
        for msg_id, arrived in list(self.arrival.items()):
            if arrived < order:
                self.pop(msg_id, None)
                self.arrival.pop(msg_id, None)


class _ReceivedMessages(queue.Queue):
    """The DIMSE message queue, numbering each message as it arrives."""

    def __init__(self, provider: dimse.DIMSEServiceProvider) -> None:
        super().__init__()
        self.provider = provider

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        received = getattr(self.provider, "jivex_received", 0) + 1
        self.provider.jivex_received = received  # type: ignore[attr-defined]
        message = item[1] if isinstance(item, tuple) and len(item) == 2 else None
        if message is not None:
            message.jivex_order = received
        super().put(item, block, timeout)


def _cancel_requests(self: dimse.DIMSEServiceProvider) -> CancelRequests:
    return self.__dict__["jivex_cancels"]


def _keep_cancel_requests(self: dimse.DIMSEServiceProvider, _value: Any) -> None:
    # pynetdicom assigns an empty table at start and around every request it
    # serves; the one table stays (see CancelRequests).
    if "jivex_cancels" not in self.__dict__:
        self.__dict__["jivex_cancels"] = CancelRequests(self)


_dimse_init = dimse.DIMSEServiceProvider.__init__


def _dimse_init_ordered(self: dimse.DIMSEServiceProvider, assoc: Any) -> None:
    _dimse_init(self, assoc)
    self.jivex_received = 0  # type: ignore[attr-defined]
    self.msg_queue = _ReceivedMessages(self)


def settle_incoming(assoc: Association, timeout: float = 0.05) -> None:
    """Let the reactor take in what the peer has already sent.

    Called before an SCP decides whether a request was cancelled: a
    C-CANCEL sent right behind its request may sit unread in the socket
    while the SCP, on another thread, answers; it counts once it has arrived
    here, not once the reactor got round to it. Waits while bytes are unread
    or events are unprocessed, at most *timeout* seconds (one ``select`` when
    nothing is waiting).
    """
    dul_ = assoc.dul
    sock = getattr(getattr(dul_, "socket", None), "socket", None)
    if sock is None:
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            ready, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return
        if not ready and dul_.event_queue.empty():
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.0005)


dimse.DIMSEServiceProvider.cancel_req = property(  # type: ignore[assignment]
    _cancel_requests, _keep_cancel_requests
)
dimse.DIMSEServiceProvider.__init__ = _dimse_init_ordered  # type: ignore[method-assign]


def make_ae(settings: Settings) -> AE:
    """An AE with our identity and the network settings of table 42."""
    net = settings.network
    _config.LOG_REQUEST_IDENTIFIERS = settings.logging.dump_datasets
    _config.LOG_RESPONSE_IDENTIFIERS = settings.logging.dump_datasets
    ae = AE(ae_title=net.ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.maximum_pdu_size = net.max_pdu
    ae.acse_timeout = net.acse_timeout
    ae.dimse_timeout = net.dimse_timeout
    ae.network_timeout = net.network_timeout
    ae.connection_timeout = net.connection_timeout
    ae.maximum_associations = net.max_associations or UNLIMITED_ASSOCIATIONS
    ae.require_calling_aet = list(net.accepted_calling_aets)
    return ae
