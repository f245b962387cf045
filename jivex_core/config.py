"""Typed settings of the core, loaded from one TOML file.

The reference file ``resources/jivex.toml`` documents every key.
Loading validates the whole file first: a malformed or contradictory value
stops the start with one :class:`~jivex_core.errors.ConfigError` whose message
names the key, so an administrator never has to guess which line is wrong.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydicom.uid import UID

from jivex_core.errors import ConfigError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=86400)]
FolderPath = Annotated[Path, Field(strict=False)]


def _check_uids(values: list[str], what: str) -> list[str]:
    for value in values:
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", value) or len(value) > 64:
            raise ValueError(f"'{value}' is not a UID ({what})")
    return values


_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def check_ae_title(value: str) -> str:
    """Validate an AE title as PS3.5 6.2 defines it (AE value representation).

    At most 16 characters of the default repertoire, no backslash, no control
    characters and not only spaces. Leading and trailing spaces are not
    significant and are removed.
    """
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError(
            f"'{value}' is not a valid AE title: 1 to 16 printable ASCII "
            "characters, no backslash, not only spaces"
        )
    return value.strip()


class _Section(BaseModel):
    # strict: a port of "4499" or true, or fsync = "yes", is a mistake to
    # report, not a value to guess at.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Minutes = Annotated[float, Field(gt=0, le=7 * 24 * 60)]

#: The optional ("O") return keys of tables 26-28 a site may ask for.
OPTIONAL_QUERY_KEYS = ("ContentDate", "ContentTime", "ObservationDateTime")


class RemoteNode(_Section):
    """A remote application entity (move destination, send target, archive)."""

    ae_title: str
    host: str
    port: Port
    max_pdu: Annotated[int, Field(ge=0)] = 32768
    #: Minutes to wait before each new attempt of a failed send (table 42).
    retry_minutes: list[Minutes] = [1.0, 5.0, 60.0, 360.0]
    #: Sends to this node wait for this time of day ("HH:MM"), if set.
    send_at: str | None = None
    #: C-FIND answers after which a query is cancelled (statement 3.2.6.3).
    max_query_results: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    #: How retrieves from this node run: C-MOVE to our Storage SCP, or C-GET
    #: on the query association (for a node that cannot reach our port).
    retrieve: Literal["move", "get"] = "move"
    #: Optional return keys of table 26-28 asked for at image level
    #: (ContentDate, ContentTime, ObservationDateTime).
    optional_keys: list[str] = []

    _check_ae = field_validator("ae_title")(check_ae_title)

    @field_validator("optional_keys")
    @classmethod
    def _check_optional(cls, value: list[str]) -> list[str]:
        for keyword in value:
            if keyword not in OPTIONAL_QUERY_KEYS:
                raise ValueError(
                    f"'{keyword}' is not an optional key of table 26-28 "
                    f"({', '.join(OPTIONAL_QUERY_KEYS)})"
                )
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        # The statement (3.3.3) supports IPv4 only: an IPv4 address or a
        # host name (RFC 1123 labels) that resolves to one.
        try:
            ipaddress.IPv4Address(value)
            return value
        except ValueError:
            pass
        label = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
        if (
            len(value) > 253
            or re.fullmatch(r"[\d.]+", value)  # digits: a bad IPv4 address
            or not re.fullmatch(rf"{label}(\.{label})*\.?", value)
        ):
            raise ValueError(
                f"'{value}' is not an IPv4 address or a host name "
                "(letters, digits, hyphens and dots; IPv6 is not supported)"
            )
        return value

    @field_validator("send_at")
    @classmethod
    def _check_send_at(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"'{value}' is not a time of day as HH:MM")
        return value

    @classmethod
    def parse(cls, text: str) -> RemoteNode:
        """Parse ``AET@HOST:PORT`` as given to ``jivex server --remote``."""
        match = re.fullmatch(r"(.+)@(.+):(\d+)", text)
        if not match:
            raise ConfigError(f"--remote '{text}' is not of the form AET@HOST:PORT")
        try:
            return cls(ae_title=match[1], host=match[2], port=int(match[3]))
        except ValidationError as exc:
            raise ConfigError(f"--remote '{text}': {_first_error(exc)}") from exc


class NetworkSettings(_Section):
    """Association settings shared by every DICOM service (table 42)."""

    ae_title: str = "JIVEX"
    bind_address: str = "0.0.0.0"
    storage_port: Port = 4499
    query_port: Port = 4498
    web_port: Port = 8080
    max_pdu: Annotated[int, Field(ge=0, le=2**32 - 1)] = 32768
    acse_timeout: Seconds = 60
    connection_timeout: Seconds = 60
    network_timeout: Seconds = 60
    dimse_timeout: Seconds = 60
    max_associations: Annotated[int, Field(ge=0, le=10_000)] = 0
    shutdown_timeout: Annotated[float, Field(ge=0, le=3600)] = 10
    accepted_calling_aets: list[str] = []

    _check_ae = field_validator("ae_title")(check_ae_title)

    @field_validator("bind_address")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        # The statement (3.3.3) supports IPv4 only.
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not an IPv4 address (e.g. 0.0.0.0 or 127.0.0.1)"
            ) from None
        return value

    @field_validator("accepted_calling_aets")
    @classmethod
    def _check_calling(cls, value: list[str]) -> list[str]:
        return [check_ae_title(v) for v in value]

    @field_validator("max_pdu")
    @classmethod
    def _check_pdu(cls, value: int) -> int:
        # PS3.8 D.1: 0 means unlimited; a real limit must hold a PDV header.
        if 0 < value < 4096:
            raise ValueError(f"{value} is below 4096 bytes (0 means no limit)")
        return value


class StorageSettings(_Section):
    """The Storage SCP and the file store."""

    data_dir: FolderPath | None = None
    min_free_space_mb: Annotated[float, Field(ge=0)] = 500
    fsync: bool = True
    sop_classes: list[str] = []
    transfer_syntaxes: list[str] = []
    #: Studies whose newest object was received more than this many days ago
    #: are removed locally (0: kept forever); only objects a remote AE of the
    #: table can give back again are.
    lifetime_days: Annotated[int, Field(ge=0, le=36500)] = 0

    @field_validator("data_dir", mode="before")
    @classmethod
    def _check_data_dir(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("an empty path; leave the key out for the default")
        return value

    @field_validator("sop_classes")
    @classmethod
    def _check_sop_classes(cls, value: list[str]) -> list[str]:
        return _check_uids(value, "SOP class")

    @field_validator("transfer_syntaxes")
    @classmethod
    def _check_syntaxes(cls, value: list[str]) -> list[str]:
        _check_uids(value, "transfer syntax")
        for uid in value:
            if not UID(uid).is_transfer_syntax:
                raise ValueError(f"'{uid}' is not a known transfer syntax")
        return value


class LoggingSettings(_Section):
    """Where and how much the core logs."""

    level: str = "INFO"
    dump_datasets: bool = False

    @field_validator("level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        allowed = ("DEBUG", "INFO", "WARNING", "ERROR")
        if value.upper() not in allowed:
            raise ValueError(f"'{value}' is not one of {', '.join(allowed)}")
        return value.upper()


class RoutingRule(_Section):
    """Forward received objects that match every given condition.

    An empty condition list matches anything; values within one list are
    alternatives (calling AE titles, modalities, SOP Class UIDs).
    """

    destinations: Annotated[list[str], Field(min_length=1)]
    calling_ae: list[str] = []
    modality: list[str] = []
    sop_class: list[str] = []

    @field_validator("destinations", "calling_ae")
    @classmethod
    def _check_titles(cls, value: list[str]) -> list[str]:
        return [check_ae_title(v) for v in value]

    @field_validator("sop_class")
    @classmethod
    def _check_classes(cls, value: list[str]) -> list[str]:
        return _check_uids(value, "SOP class")

    def matches(self, calling_ae: str, modality: str, sop_class: str) -> bool:
        """Whether an object received with these properties is forwarded."""
        return (
            (not self.calling_ae or calling_ae.strip() in self.calling_ae)
            and (not self.modality or modality in self.modality)
            and (not self.sop_class or sop_class in self.sop_class)
        )


class JobSettings(_Section):
    """The job queue: sends, forwards and retrieves run in the core."""

    #: Jobs run at the same time (each on its own association).
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    #: Objects forwarded by a rule wait this long so that one association
    #: carries what arrived together.
    forward_delay_seconds: Annotated[float, Field(ge=0, le=3600)] = 2.0


class OverlayCorners(_Section):
    """Lines of the four corners of a viewport for one modality; a corner
    left out keeps the built-in lines (``jivex_client.viewer.overlay``)."""

    top_left: list[str] | None = None
    top_right: list[str] | None = None
    bottom_left: list[str] | None = None
    bottom_right: list[str] | None = None


class ViewerSettings(_Section):
    """The workstation's image viewer (read by the client, not the core)."""

    #: Decoded frames kept in memory, in MiB.
    cache_mb: Annotated[int, Field(ge=64, le=65536)] = 768
    #: Corner texts per modality (``CT``, ``MR``...) or ``default``.
    overlay: dict[str, OverlayCorners] = {}

    @field_validator("overlay")
    @classmethod
    def _check_overlay(cls, value: dict[str, OverlayCorners]) -> dict:
        for key in value:
            if key != "default" and not re.fullmatch(r"[A-Z0-9_]{1,16}", key):
                raise ValueError(
                    f"'{key}' is not a modality (upper case, like CT) nor 'default'"
                )
        return value


class Settings(_Section):
    """Everything the core needs to run, one section per concern."""

    schema_version: int = SCHEMA_VERSION
    network: NetworkSettings = NetworkSettings()
    storage: StorageSettings = StorageSettings()
    logging: LoggingSettings = LoggingSettings()
    jobs: JobSettings = JobSettings()
    viewer: ViewerSettings = ViewerSettings()
    remote: list[RemoteNode] = []
    routing: list[RoutingRule] = []

    @field_validator("schema_version")
    @classmethod
    def _check_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(
                f"{value} is not supported; this version reads {SCHEMA_VERSION}"
            )
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        net = self.network
        ports = {
            "network.storage_port": net.storage_port,
            "network.query_port": net.query_port,
            "network.web_port": net.web_port,
        }
        names = list(ports)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                if ports[first] == ports[second]:
                    raise ValueError(
                        f"{first} and {second} are both {ports[first]}; each "
                        "service needs its own port"
                    )
        seen: set[str] = set()
        for node in self.remote:
            if node.ae_title in seen:
                raise ValueError(
                    f"remote: AE title '{node.ae_title}' is configured twice"
                )
            seen.add(node.ae_title)
        for number, rule in enumerate(self.routing, 1):
            for title in rule.destinations:
                if title not in seen:
                    raise ValueError(
                        f"routing rule {number}: destination '{title}' is not in "
                        "the remote table"
                    )
        return self

    @property
    def data_dir(self) -> Path:
        """The data folder: configured, else the user's data directory."""
        if self.storage.data_dir is not None:
            return self.storage.data_dir.expanduser().absolute()
        return Path(platformdirs.user_data_dir("jivex", appauthor=False))

    def remote_node(self, ae_title: str) -> RemoteNode | None:
        """Look up a remote AE by title (AE titles compare without padding)."""
        for node in self.remote:
            if node.ae_title == ae_title.strip():
                return node
        return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    if not err["loc"]:
        return msg  # a consistency rule: its message names the keys
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if err["type"] == "value_error":
        return f"{key}: {msg}"
    return f"{key}: {msg} (got {err['input']!r})"


def build_settings(data: dict[str, Any], source: str = "settings") -> Settings:
    """Validate a settings mapping; raise ConfigError naming the first bad key."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from exc


def load_settings(
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> Settings:
    """Load the TOML file at *path* (defaults when None) and apply overrides.

    *overrides* maps dotted keys (``network.storage_port``) to values, as the
    command line gives them; they win over the file. A bad override is
    reported by its *labels* entry (the option that gave it), not as the
    file's.
    """
    data: dict[str, Any] = {}
    source = "settings"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file '{path}' does not exist") from exc
        except OSError as exc:
            raise ConfigError(
                f"configuration file '{path}' cannot be read: {exc.strerror}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: not UTF-8 ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                key = ".".join(parents[: depth + 1])
                raise ConfigError(f"{source}: {key}: must be a table ([{key}])")
        if leaf == "remote" and isinstance(value, list):
            existing = node.setdefault("remote", [])
            if not isinstance(existing, list):
                raise ConfigError(f"{source}: remote: must be an array of tables")
            node["remote"] = list(existing) + value
        else:
            node[leaf] = value
    given = {key for key, value in (overrides or {}).items() if value is not None}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        loc = ".".join(str(part) for part in exc.errors()[0]["loc"])
        if loc in given:
            label = (labels or {}).get(loc, f"command line ({loc})")
            message = _first_error(exc).removeprefix(f"{loc}: ")
            raise ConfigError(f"{label}: {message}") from exc
        raise ConfigError(f"{source}: {_first_error(exc)}") from exc
    if path is not None:
        logger.warning("Configuration read from '%s'", path)
    return settings
