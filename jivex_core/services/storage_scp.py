"""JiveX DICOM Storage SCP Service (conformance statement 3.2.1).

Accepts Verification and every storage SOP class of table 3 with the
transfer syntaxes of table 5 (plus the other standard ones a level 2 archive
can keep without decoding), choosing for each presentation context the first
transfer syntax the requestor proposed that we support. Objects go through
:meth:`jivex_core.store.Store.ingest`.

C-STORE statuses (PS3.4 B.2.3 and table 6): 0000 stored or already stored;
A700 out of resources; C000 cannot understand; C001 any other failure.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from pynetdicom import evt
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import _STORAGE_CLASSES, register_uid, uid_to_service_class
from pynetdicom.transport import ThreadedAssociationServer

from jivex_core.config import Settings
from jivex_core.errors import JivexError, dimse_status
from jivex_core.services.association import (
    ASSOCIATION_HANDLERS,
    Peer,
    abort_at_shutdown,
    make_ae,
)
from jivex_core.services.origins import Origins
from jivex_core.sopclasses import (
    DEFAULT_TRANSFER_SYNTAXES,
    STORAGE_SOP_CLASSES,
    VERIFICATION,
)
from jivex_core.store import Store

logger = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122


def accepted_sop_classes(configured: list[str]) -> list[str]:
    """The storage SOP classes to accept: configured, else all we know.

    All we know is table 3 of the statement plus every other standard storage
    class (segmentations, whole-slide images, newer SR...): a level 2 archive
    keeps objects without interpreting them, so refusing a class the
    statement predates would only make the sender fail.
    """
    if configured:
        return list(configured)
    extra = [u for u in _STORAGE_CLASSES.values() if u not in STORAGE_SOP_CLASSES]
    return [*STORAGE_SOP_CLASSES, *sorted(extra)]


def _register_storage_class(sop_class: str) -> None:
    """Make pynetdicom handle a retired or private class as storage.

    pynetdicom aborts the association on a C-STORE of a class it does not
    know (the retired ultrasound ones, VISUS's), even in an accepted context.
    """
    if uid_to_service_class(sop_class) is StorageServiceClass:
        return
    name = STORAGE_SOP_CLASSES.get(sop_class, sop_class)
    keyword = "Jivex" + re.sub(r"[^0-9A-Za-z]", "", name.title())
    register_uid(sop_class, keyword, StorageServiceClass)


class StorageSCP:
    """The Storage SCP on the storage port; one thread per association."""

    def __init__(
        self, settings: Settings, store: Store, origins: Origins | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        #: Tells which remote AE each object came from (see origins.py).
        self.origins = origins if origins is not None else Origins(settings)
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self.ae = make_ae(settings)
        sop_classes = accepted_sop_classes(settings.storage.sop_classes)
        syntaxes = settings.storage.transfer_syntaxes or list(DEFAULT_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(VERIFICATION, syntaxes)
        for sop_class in sop_classes:
            _register_storage_class(sop_class)
            self.ae.add_supported_context(sop_class, syntaxes)

    @property
    def port(self) -> int:
        """The port actually bound (useful when configured as 0)."""
        if self._server is None:
            return 0
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in background threads; OSError if the port is taken."""
        net = self.settings.network
        handlers = [*ASSOCIATION_HANDLERS, (evt.EVT_C_STORE, self._on_c_store)]
        self._server = self.ae.start_server(
            (net.bind_address, net.storage_port), block=False, evt_handlers=handlers
        )
        logger.info(
            "Storage SCP '%s' listening on %s:%s",
            net.ae_title,
            net.bind_address,
            self.port,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let running associations finish, then abort them."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        deadline = time.monotonic() + timeout
        # Only established associations have work to finish; a connection
        # that never completed a request (a port probe, a peer stuck halfway
        # through a PDU) would otherwise hold up the stop indefinitely.
        while time.monotonic() < deadline and any(
            assoc.is_established for assoc in self.ae.active_associations
        ):
            time.sleep(0.05)
        for assoc in self.ae.active_associations:
            abort_at_shutdown(assoc)
        logger.info("Storage SCP stopped")

    def _on_c_store(self, event: evt.Event) -> int:
        """Handle one C-STORE request (PS3.4 B.2.2); never raises."""
        peer = Peer.of(event.assoc)
        req = event.request
        origin = self.origins.of_c_store(
            peer.calling_ae,
            req.MoveOriginatorApplicationEntityTitle,
            req.MoveOriginatorMessageID,
        )
        return store_received(self.store, event, peer.calling_ae, str(peer), origin)


def store_received(
    store: Store, event: evt.Event, source_ae: str, peer: str, origin_ae: str = ""
) -> int:
    """Store the object of one C-STORE request; the status to answer.

    Shared by the Storage SCP and by C-GET retrieves, whose objects arrive
    on the association we opened; *source_ae* is who sent the object, *peer*
    how logs name it, *origin_ae* the remote AE to fetch it again from ('' if
    none). Never raises.
    """
    req = event.request
    sop_class = str(req.AffectedSOPClassUID or "")
    sop_instance = str(req.AffectedSOPInstanceUID or "")
    context_class = str(event.context.abstract_syntax)
    if sop_class != context_class:
        # PS3.7 9.1.1: the SOP class must be that of the context used.
        logger.error(
            "C-STORE from %s of '%s' refused with 0x%04X: SOP Class '%s' sent "
            "on a presentation context for '%s'",
            peer,
            sop_instance,
            STATUS_SOP_CLASS_NOT_SUPPORTED,
            sop_class,
            context_class,
        )
        return STATUS_SOP_CLASS_NOT_SUPPORTED
    try:
        data = req.DataSet.getvalue()
        result = store.ingest(
            data,
            str(event.context.transfer_syntax),
            source_ae,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            origin_ae=origin_ae,
        )
    except JivexError as exc:
        status = dimse_status(exc)
        logger.error(
            "C-STORE from %s of '%s' refused with 0x%04X: %s",
            peer,
            sop_instance,
            status,
            exc,
        )
        return status
    except Exception as exc:
        status = dimse_status(exc)
        logger.exception(
            "C-STORE from %s of '%s' failed with 0x%04X", peer, sop_instance, status
        )
        return status
    logger.info(
        "C-STORE from %s: %s '%s' %s (0x0000)",
        peer,
        STORAGE_SOP_CLASSES.get(sop_class, sop_class),
        sop_instance,
        ("stored, incomplete" if result.incomplete else "stored")
        if result.stored
        else "already stored, kept the existing object",
    )
    return STATUS_SUCCESS
