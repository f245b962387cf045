"""The ``jivex`` command: the workstation, the headless server and tools.

Subcommands write their results to standard output and their diagnostics to
standard error. Exit codes: 0 success, 1 partial failure (some inputs were
not processed), 2 failure (nothing done: bad arguments or configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jivex_core import __version__
from jivex_core.config import RemoteNode, Settings, load_settings
from jivex_core.errors import CannotUnderstandError, ConfigError, JivexError
from jivex_core.wording import counted

logger = logging.getLogger("jivex_core.cli")

EXIT_OK, EXIT_PARTIAL, EXIT_FAILURE = 0, 1, 2


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # pynetdicom logs every PDU at INFO; our services log the events that
    # matter, so its own lines are only wanted when debugging.
    if level != "DEBUG":
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # pydicom both logs and warns about non-conformant values; one line each.
    logging.getLogger("py.warnings").setLevel(logging.ERROR)
    logging.captureWarnings(True)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "storage.data_dir": getattr(args, "data", None),
        "network.bind_address": getattr(args, "bind", None),
        "network.ae_title": getattr(args, "ae_title", None),
        "network.storage_port": getattr(args, "storage_port", None),
        "network.query_port": getattr(args, "query_port", None),
        "network.web_port": getattr(args, "web_port", None),
    }
    remotes = getattr(args, "remote", None)
    if remotes:
        overrides["remote"] = [RemoteNode.parse(text).model_dump() for text in remotes]
    config = getattr(args, "config", None)
    return load_settings(Path(config) if config else None, overrides, _OPTIONS)


#: The option behind each setting the command line overrides.
_OPTIONS = {
    "storage.data_dir": "--data",
    "network.bind_address": "--bind",
    "network.ae_title": "--ae-title",
    "network.storage_port": "--storage-port",
    "network.query_port": "--query-port",
    "network.web_port": "--web-port",
}


def _common(parser: argparse.ArgumentParser, config: bool = True) -> None:
    if config:
        parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    parser.add_argument("--data", metavar="DIR", help="data folder (overrides config)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jivex``."""
    parser = argparse.ArgumentParser(
        prog="jivex", description="JiveX-Py PACS workstation and archive"
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="the workstation (default)")
    _common(gui)

    server = sub.add_parser("server", help="run the core alone, headless")
    _common(server)
    server.add_argument("--bind", metavar="ADDR", help="address to listen on")
    server.add_argument("--ae-title", metavar="AET", help="local AE title")
    server.add_argument("--storage-port", type=int, metavar="N")
    server.add_argument("--query-port", type=int, metavar="N")
    server.add_argument("--web-port", type=int, metavar="N")
    _remote_option(server)
    server.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="override logging.level",
    )
    server.add_argument(
        "--exit-with-parent", action="store_true", help=argparse.SUPPRESS
    )

    ls = sub.add_parser("ls", help="list what the local archive holds")
    _common(ls)
    ls.add_argument("--json", action="store_true", help="JSON array of objects")
    ls.add_argument(
        "--level", choices=["patient", "study", "series", "instance"], default="study"
    )
    ls.add_argument(
        "--removed",
        action="store_true",
        help="list what was removed locally (and can be reloaded) instead",
    )

    imp = sub.add_parser("import", help="import DICOM files or folders")
    _common(imp)
    imp.add_argument("paths", nargs="+", metavar="PATH")

    send = sub.add_parser(
        "send",
        help="send patients (by ID), studies, series or instances to a remote AE",
    )
    _common(send)
    send.add_argument("--to", required=True, metavar="AET", help="remote AE title")
    _remote_option(send)
    send.add_argument(
        "--no-wait", action="store_true", help="queue the send and exit at once"
    )
    send.add_argument("--json", action="store_true", help="print the job as JSON")
    send.add_argument("uids", nargs="+", metavar="UID")

    find = sub.add_parser("find", help="query a remote archive (C-FIND)")
    _common(find)
    find.add_argument("--from", dest="source", required=True, metavar="AET")
    _remote_option(find)
    find.add_argument(
        "--level", choices=["patient", "study", "series", "image"], default="study"
    )
    find.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="cancel after N answers (default: the node's max_query_results)",
    )
    find.add_argument("--json", action="store_true", help="JSON array of objects")
    find.add_argument("keys", nargs="*", metavar="KEY=VALUE")

    move = sub.add_parser("move", help="retrieve from a remote archive (C-MOVE)")
    _common(move)
    move.add_argument("--from", dest="source", required=True, metavar="AET")
    _remote_option(move)
    move.add_argument(
        "--level", choices=["patient", "study", "series"], default="study"
    )
    move.add_argument(
        "--study",
        metavar="UID",
        help="with --level series: their study (else the remote is asked)",
    )
    move.add_argument(
        "--no-wait", action="store_true", help="queue the retrieve and exit at once"
    )
    move.add_argument(
        "--no-check",
        action="store_true",
        help="do not ask the remote first (C-FIND) which of the UIDs it has",
    )
    move.add_argument("--json", action="store_true", help="print the jobs as JSON")
    move.add_argument("uids", nargs="+", metavar="UID")

    keys = sub.add_parser(
        "key-images",
        help="flag key images: store a Key Object Selection Document",
        description="Create a Key Object Selection Document (TID 2010) flagging "
        "the given images, stored in the archive like a received object. "
        "Frames of a multi-frame image are given after a colon: UID:2,5.",
    )
    _common(keys)
    keys.add_argument(
        "--title",
        metavar="CODE_OR_MEANING",
        default="113000",
        help="document title of CID 7010, by code or meaning "
        "(default 113000, 'Of Interest')",
    )
    keys.add_argument("--text", default="", help="Key Object Description")
    keys.add_argument(
        "--creator", default="", metavar="NAME", help="who chose the images (PN)"
    )
    keys.add_argument("--json", action="store_true", help="print the result as JSON")
    keys.add_argument("images", nargs="+", metavar="SOP_INSTANCE_UID[:FRAME,...]")

    delete = sub.add_parser(
        "delete",
        help="remove patients (by ID), studies, series or instances locally, "
        "keeping a reference to reload them",
    )
    _common(delete)
    delete.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be removed, remove nothing",
    )
    delete.add_argument("--json", action="store_true", help="print the result as JSON")
    delete.add_argument("uids", nargs="+", metavar="UID")

    reload = sub.add_parser(
        "reload",
        help="fetch removed patients (by ID), studies, series or instances again "
        "from the remote AE they came from",
    )
    _common(reload)
    reload.add_argument(
        "--no-wait", action="store_true", help="queue the retrieves and exit at once"
    )
    reload.add_argument("--json", action="store_true", help="print the jobs as JSON")
    reload.add_argument("uids", nargs="+", metavar="UID")

    render = sub.add_parser(
        "render",
        help="render DICOM images to PNG or JPEG through the viewer's pipeline",
    )
    render.add_argument("files", nargs="+", metavar="FILE")
    render.add_argument("--out", required=True, metavar="DIR", help="output folder")
    render.add_argument(
        "--format", choices=["png", "jpeg"], default="png", help="default: png"
    )
    render.add_argument(
        "--window",
        type=_window,
        metavar="CENTER,WIDTH",
        help="VOI window (default: the one the viewer shows first)",
    )
    render.add_argument(
        "--frame", type=_positive, metavar="N", help="only frame N (1-based)"
    )
    render.add_argument(
        "--presentation",
        metavar="GSPS_FILE",
        help="apply a Grayscale Softcopy Presentation State",
    )

    jobs = sub.add_parser("jobs", help="list, cancel or retry sends and retrieves")
    _common(jobs)
    jobs.add_argument("--json", action="store_true", help="JSON array of objects")
    action = jobs.add_mutually_exclusive_group()
    action.add_argument("--cancel", type=int, metavar="ID", help="cancel a job")
    action.add_argument("--retry", type=int, metavar="ID", help="run a job again now")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _window(text: str) -> Any:
    """``--window CENTER,WIDTH``: finite numbers, a width of 1 or more
    (PS3.3 C.11.2.1.2); anything else is named (exit 2)."""
    from jivex_core.imaging.render import Window

    center, sep, width = text.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"'{text}' is not CENTER,WIDTH")
    numbers = []
    for name, part in (("center", center), ("width", width)):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not CENTER,WIDTH: the {name} '{part}' is not a number"
            ) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"'{text}' is not CENTER,WIDTH: the {name} '{part.strip()}' is not "
                "a finite number"
            )
        numbers.append(value)
    if numbers[1] < 1:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not CENTER,WIDTH with a width of 1 or more"
        )
    return Window(numbers[0], numbers[1])


def _negative_windows(argv: Sequence[str] | None) -> list[str]:
    """``--window -600,1500`` as ``--window=-600,1500``: argparse would take a
    value starting with '-' for an option (CT windows have negative centres)."""
    items = list(sys.argv[1:] if argv is None else argv)
    out: list[str] = []
    position = 0
    while position < len(items):
        item = items[position]
        following = items[position + 1] if position + 1 < len(items) else ""
        if item == "--window" and following[:1] == "-" and "," in following:
            # A centre, negative (or -inf, refused by _window with its name).
            out.append(f"--window={following}")
            position += 2
            continue
        out.append(item)
        position += 1
    return out


def _remote_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remote",
        action="append",
        metavar="AET@HOST:PORT",
        help="add a remote AE (repeatable)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jivex`` command."""
    args = build_parser().parse_args(_negative_windows(argv))
    command = args.command or "gui"
    try:
        if command == "gui":
            # The client is a separate package on top of the core; only this
            # subcommand needs it (and Qt), so it is looked up by name.
            client = importlib.import_module("jivex_client.app")
            return int(client.main(args))
        if command == "server":
            return _server(args)
        if command == "ls":
            return _ls(args)
        if command == "import":
            return _import(args)
        if command == "render":
            return _render(args)
        if command == "key-images":
            _key_image_args(args)  # bad arguments never reach the core
            return _with_core(args)
        if command in ("send", "jobs", "find", "move", "delete", "reload"):
            return _with_core(args)
    except ConfigError as exc:
        print(f"jivex {command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        # `jivex ls | head`: the reader has what it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    raise AssertionError(command)


# -- server ---------------------------------------------------------------


def _server(args: argparse.Namespace) -> int:
    from jivex_core.engine import Engine

    settings = _settings(args)
    _setup_logging(args.log_level or settings.logging.level)
    net = settings.network
    logger.warning(
        "JiveX-Py %s starting: AE '%s' on %s, storage port %s, query port %s, "
        "data folder '%s'",
        __version__,
        net.ae_title,
        net.bind_address,
        net.storage_port,
        net.query_port,
        settings.data_dir,
    )
    engine = Engine(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.exit_with_parent:
            parent = os.getppid()

            async def watch_parent() -> None:
                while os.getppid() == parent:
                    await asyncio.sleep(1.0)
                logger.warning("The workstation exited; stopping the core")
                stop.set()

            watcher = asyncio.create_task(watch_parent())
        await engine.run(stop)
        if args.exit_with_parent:
            watcher.cancel()

    asyncio.run(run())
    return EXIT_OK


# -- ls -------------------------------------------------------------------

_TABLE_COLUMNS = {
    "patient": ["PatientID", "PatientName", "PatientBirthDate", "PatientSex"],
    "study": [
        "PatientID",
        "PatientName",
        "StudyDate",
        "AccessionNumber",
        "StudyDescription",
        "StudyInstanceUID",
    ],
    "series": [
        "PatientID",
        "StudyInstanceUID",
        "SeriesNumber",
        "Modality",
        "SeriesDescription",
        "SeriesInstanceUID",
    ],
    "instance": [
        "PatientID",
        "Modality",
        "InstanceNumber",
        "SOPClassUID",
        "SOPInstanceUID",
        "path",
    ],
}


_REMOVED_COLUMNS = {
    "patient": ["NumberOfRemovedInstances", "removed_at"],
    "study": ["NumberOfRemovedInstances", "origin_ae", "removed_at"],
    "series": ["NumberOfRemovedInstances", "origin_ae", "removed_at"],
    "instance": ["origin_ae", "removed_at"],
}

#: The keys of each level a reference carries, for ``ls --removed``.
_REMOVED_LEVEL_KEYS = {
    "patient": (
        "PatientID",
        "IssuerOfPatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
    ),
    "study": (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
    ),
    "series": ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription"),
}


def removed_listing(references: list[dict], level: str) -> list[dict]:
    """Rows of ``jivex ls --removed``: the references (instance level) or
    their patients, studies or series, each with the keys of the levels
    above, ``NumberOfRemovedInstances``, ``origin_ae`` (the origins, joined
    with a backslash) and ``removed_at`` (the latest)."""
    if level == "instance":
        return references
    levels = ["patient", "study", "series"]
    above = levels[: levels.index(level) + 1]
    keys = [k for lv in above for k in _REMOVED_LEVEL_KEYS[lv]]
    key = {"patient": "PatientID", "study": "StudyInstanceUID"}.get(
        level, "SeriesInstanceUID"
    )
    grouped: dict[str, dict] = {}
    for ref in references:
        row = grouped.get(ref[key])
        if row is None:
            row = grouped[ref[key]] = {k: ref[k] for k in keys}
            row |= {"NumberOfRemovedInstances": 0, "origins": [], "removed_at": ""}
        row["NumberOfRemovedInstances"] += 1
        if ref["origin_ae"] not in row["origins"]:
            row["origins"].append(ref["origin_ae"])
        row["removed_at"] = max(row["removed_at"], ref["removed_at"])
    out = []
    for row in grouped.values():
        origins = row.pop("origins")
        out.append({**row, "origin_ae": "\\".join(sorted(origins))})
    return out


def _cell(column: str, value: Any) -> str:
    """A table cell: UIDs and paths whole, free text cut with an ellipsis."""
    text = "" if value is None else str(value)
    if column.endswith("UID") or column == "path" or len(text) <= 40:
        return text
    return text[:39] + "…"


def _ls(args: argparse.Namespace) -> int:
    from jivex_core.store.index import Index, database_url

    settings = _settings(args)
    _setup_logging("WARNING")
    data_dir = settings.data_dir
    try:
        has_index = (data_dir / "index.sqlite").is_file()
    except OSError as exc:
        raise ConfigError(f"data folder '{data_dir}' cannot be used: {exc}") from exc
    if not has_index:
        raise ConfigError(f"data folder '{data_dir}' holds no archive (no index)")
    try:
        index = Index(database_url(data_dir))
    except JivexError as exc:
        raise ConfigError(f"data folder '{data_dir}' cannot be used: {exc}") from exc
    try:
        if args.removed:
            from jivex_core.store.files import FileStore
            from jivex_core.store.removal import Removals

            references = Removals(index, FileStore(data_dir)).references()
            rows = removed_listing(references, args.level)
        else:
            rows = index.listing(args.level, data_dir)
    finally:
        index.close()
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return EXIT_OK
    columns = _TABLE_COLUMNS[args.level]
    if args.removed:
        columns = [c for c in columns if c != "path"] + _REMOVED_COLUMNS[args.level]
    table = [columns] + [[_cell(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print(
            "  ".join(
                cell.ljust(w) for cell, w in zip(row, widths, strict=True)
            ).rstrip()
        )
    return EXIT_OK


# -- import ---------------------------------------------------------------


def _walk(paths: Sequence[str]) -> Iterator[Path]:
    for text in paths:
        path = Path(text)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield path


class _CurrentFile(logging.Filter):
    """Prefixes what the store logs with the file being imported."""

    path: Path | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.path is not None and record.name.startswith("jivex_core.store"):
            record.msg = f"{self.path}: {record.msg}"
        return True


def _import(args: argparse.Namespace) -> int:
    """Import through the core serving the data folder when one runs (its
    routing rules and events apply, and it stays the one writer), else
    straight into the data folder."""
    from jivex_core.link_client import LinkClient

    settings = _settings(args)
    _setup_logging("WARNING")
    client = LinkClient.connect(settings.data_dir)
    counts = dict.fromkeys(("stored", "kept", "skipped", "failed"), 0)
    if client is not None:
        try:
            lost = _import_linked(args, client, counts)
        finally:
            client.close()
        if lost:
            print(
                f"jivex import: the core serving '{settings.data_dir}' stopped "
                f"during the import ({lost}); the files named above were "
                "handled, the rest not: see `jivex ls`",
                file=sys.stderr,
            )
            _import_counts(counts)
            return EXIT_FAILURE
    else:
        _import_alone(args, settings, counts)
    _import_counts(counts)
    if counts["failed"] and not (counts["stored"] or counts["kept"]):
        return EXIT_FAILURE
    return EXIT_PARTIAL if counts["failed"] else EXIT_OK


def _import_counts(counts: dict[str, int]) -> None:
    print(
        f"{counts['stored']} stored, {counts['kept']} already stored, "
        f"{counts['skipped']} skipped, {counts['failed']} failed",
        file=sys.stderr,
    )


#: Files per ``import`` request: the output keeps pace with the import.
_IMPORT_BATCH = 16


def _import_linked(
    args: argparse.Namespace, client: Any, counts: dict[str, int]
) -> str:
    """Import through the running core; '' or why the link broke."""
    from jivex_core.link_client import LinkError

    batch: list[str] = []

    def flush() -> None:
        for result in client.call("import", paths=batch):
            _import_report(result, counts, warnings=True)
        batch.clear()

    try:
        for path in _walk(args.paths):
            # The core has its own working folder.
            batch.append(str(path.absolute()))
            if len(batch) >= _IMPORT_BATCH:
                flush()
        if batch:
            flush()
    except LinkError as exc:
        print(f"jivex import: {exc}", file=sys.stderr)
        counts["failed"] += len(batch)
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return ""


def _import_alone(
    args: argparse.Namespace, settings: Settings, counts: dict[str, int]
) -> None:
    """Import with no core running: straight into the data folder, through
    the index's own locking. ``incoming/`` is left to the next core (its
    leftovers may be a starting core's files in flight)."""
    from jivex_core.engine import open_store, quiet_pydicom
    from jivex_core.importer import import_file

    quiet_pydicom()
    current = _CurrentFile()
    for handler in logging.getLogger().handlers:
        handler.addFilter(current)
    store = open_store(settings)
    try:
        for path in _walk(args.paths):
            current.path = path
            # What the store logs goes out through the filter, named.
            _import_report(import_file(store, path), counts, warnings=False)
    finally:
        current.path = None
        store.close()


def _import_report(result: dict, counts: dict[str, int], warnings: bool) -> None:
    """Print one file's outcome (stored on stdout, the rest on stderr)."""
    path, outcome, message = result["path"], result["outcome"], result["message"]
    if warnings:
        for warning in result["warnings"]:
            print(f"{path}: {warning}", file=sys.stderr)
    counts[outcome] += 1
    if outcome == "stored":
        note = f" ({message})" if message else ""
        print(f"stored: {path} -> {result['uid']}{note}")
    elif outcome == "kept":
        print(f"already stored: {path} -> {result['uid']}")
    else:
        print(f"{outcome}: {path}: {message}", file=sys.stderr)


# -- render ---------------------------------------------------------------


def _presentation(path: str) -> Any:
    """The presentation state of ``--presentation``, read from a GSPS file.

    ConfigError (exit 2, nothing rendered) when the file is not a Grayscale
    Softcopy Presentation State or cannot be read: every image would
    otherwise come out without what the user asked for.
    """
    import pydicom

    from jivex_core.imaging.gsps import GSPS_SOP_CLASS, presentation_from_dataset

    try:
        ds = pydicom.dcmread(path, force=True)
        sop_class = str(ds.get("SOPClassUID", "") or "")
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        raise ConfigError(f"--presentation {path}: cannot be read: {reason}") from None
    if sop_class != GSPS_SOP_CLASS:
        raise ConfigError(
            f"--presentation {path}: SOP Class '{sop_class}' is not Grayscale "
            f"Softcopy Presentation State Storage ({GSPS_SOP_CLASS})"
        )
    try:
        return presentation_from_dataset(ds)
    except ValueError as exc:
        raise ConfigError(f"--presentation {path}: {exc}") from None


class _NoTraceback(logging.Filter):
    """Log records as their one-line message: ``jivex render`` names each
    failure itself, and a decoder's traceback per file helps no user."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def _read_for_render(path: Path) -> tuple[Any, str]:
    """The data set of a file to render, or None and why it cannot be read.

    What is not DICOM is told apart first, with the words of ``jivex
    import``, rather than read by pydicom as an empty data set.
    """
    from io import BytesIO

    import pydicom

    from jivex_core.store.dicomfile import split_file

    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read as DICOM: {exc.strerror}"
    try:
        split_file(raw)
    except CannotUnderstandError as exc:
        return None, str(exc)
    except Exception:  # left to pydicom below
        pass
    try:
        ds = pydicom.dcmread(BytesIO(raw), force=True)
        _ = ds.get("SOPInstanceUID")
    except Exception as exc:
        return None, f"cannot be read as DICOM: {exc}"
    return ds, ""


def _render(args: argparse.Namespace) -> int:
    """Render each file to ``<SOP Instance UID>[-<frame>].<png|jpg>`` in --out.

    Each frame's warnings are printed (``warning: FILE: ...``); a frame with
    pixels missing from its file is written (they show black) but counts as
    incomplete, and the command then exits 1, as it does when a file fails.
    """
    from jivex_core.imaging.output import encode
    from jivex_core.imaging.render import RenderError, number_of_frames, render_frame

    _setup_logging("WARNING")
    # pydicom logs each decoder plugin's failure with its traceback; the
    # reason reaches the user in the RenderError printed below.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())
    state = _presentation(args.presentation) if args.presentation else None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError(f"'{out}' is not writable")
    except OSError as exc:
        raise ConfigError(f"--out {out}: {exc}") from exc
    suffix = "jpg" if args.format == "jpeg" else "png"
    rendered = failed = incomplete = 0
    for name in args.files:
        path = Path(name)
        ds, problem = _read_for_render(path)
        if ds is None:
            print(f"failed: {path}: {problem}", file=sys.stderr)
            failed += 1
            continue
        uid = _file_name(str(ds.get("SOPInstanceUID", "") or "")) or path.stem
        told: set[str] = set()
        try:
            count = number_of_frames(ds)
            frames = [args.frame] if args.frame else list(range(1, count + 1))
            if args.frame and args.frame > count:
                raise RenderError(
                    f"frame {args.frame} does not exist; the object has {count}"
                )
            if state is not None:
                # A presentation state applies to the images it references
                # only (PS3.3 C.11.11: Referenced Series Sequence).
                sop = str(ds.get("SOPInstanceUID", "") or "")
                frames = [
                    n for n in frames if any(r.covers(sop, n) for r in state.images)
                ]
                if not frames:
                    raise RenderError(
                        f"the presentation state does not reference {sop or 'it'}"
                        + (f", frame {args.frame}" if args.frame else "")
                    )
            for number in frames:
                result = render_frame(ds, number - 1, args.window, state)
                for warning in result.warnings:
                    if warning not in told:
                        told.add(warning)
                        print(f"warning: {path}: {warning}", file=sys.stderr)
                target = out / (
                    f"{uid}-{number}.{suffix}" if count > 1 else f"{uid}.{suffix}"
                )
                target.write_bytes(encode(result.image, args.format))
                note = " (incomplete)" if result.incomplete else ""
                print(f"rendered: {path} -> {target}{note}")
                rendered += 1
                incomplete += result.incomplete
        except RenderError as exc:
            print(f"failed: {path}: {exc}", file=sys.stderr)
            failed += 1
        except OSError as exc:
            print(f"failed: {path}: cannot write: {exc}", file=sys.stderr)
            failed += 1
    summary = f"{rendered} images rendered"
    if incomplete:
        summary += f" ({incomplete} incomplete: pixels missing from the file)"
    print(f"{summary}, {failed} files failed", file=sys.stderr)
    return EXIT_PARTIAL if failed or incomplete else EXIT_OK


def _file_name(uid: str) -> str:
    """A UID as a file name: only its digits and dots."""
    return "".join(c for c in uid.strip() if c.isdigit() or c == ".")


# -- send, jobs -----------------------------------------------------------

_FINISHED = ("done", "failed", "cancelled")

#: What a command leaves undone when the core dies under it, and how to see.
_LOST_HINTS = {
    "send": "the send may be incomplete: see `jivex jobs` (its job resumes "
    "when a core serves the data folder again)",
    "move": "the retrieve may be incomplete: see `jivex jobs` and `jivex ls`",
    "reload": "the reload may be incomplete: see `jivex jobs` and `jivex ls --removed`",
    "delete": "the removal may be incomplete: see `jivex ls --removed` and `jivex ls`",
    "key-images": "the key object document may not be stored: see "
    "`jivex ls --level instance`",
    "jobs": "see `jivex jobs` once a core serves the data folder again",
    "find": "no answer came back; ask again",
}

_NOT_SERVED = "it runs when `jivex server` or the workstation serves this data folder"


class _CoreLost(Exception):
    """The link to the core broke in the middle of a command."""


class _Session:
    """How a command reaches the core of its data folder: the running one
    through its link (*served*), or one it started for itself, which runs
    no job the command did not hand it (:meth:`run`)."""

    def __init__(self, call: Any, data_dir: Path, engine: Any = None) -> None:
        self.call = call
        self.data_dir = data_dir
        self.engine = engine

    @property
    def served(self) -> bool:
        """Whether a core serves the data folder (and runs every job)."""
        return self.engine is None

    def run(self, jobs: list[dict]) -> None:
        """Have our own core run these jobs (the serving core runs them all)."""
        if self.engine is not None:
            self.engine.jobs.adopt(job["id"] for job in jobs)


def _with_core(args: argparse.Namespace) -> int:
    """Run *args* against the core of the data folder: the running one
    through its link, else one started here (see :class:`_Session`)."""
    from jivex_core.link_client import LinkClient, LinkError

    settings = _settings(args)
    _setup_logging("WARNING")
    client = LinkClient.connect(settings.data_dir)
    if client is not None and getattr(args, "remote", None):
        client.close()
        print(
            f"jivex {args.command}: a core already serves '{settings.data_dir}' "
            "with its own remote AE table; --remote only works when none runs "
            "(add the node to the core's configuration instead)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if client is not None:

        def linked(method: str, **params: Any) -> Any:
            try:
                return client.call(method, **params)
            except (OSError, ValueError) as exc:
                # OSError: ConnectionError and the like, the link broke;
                # ValueError: its last line was cut short by the core's end.
                raise _CoreLost(str(exc) or type(exc).__name__) from None

        try:
            return _run_command(args, _Session(linked, settings.data_dir))
        except _CoreLost as exc:
            print(
                f"jivex {args.command}: the core serving '{settings.data_dir}' "
                f"stopped during the command ({exc}); "
                + _LOST_HINTS.get(args.command, "see `jivex jobs`"),
                file=sys.stderr,
            )
            return EXIT_FAILURE
        except (LinkError, ValueError) as exc:
            print(f"jivex {args.command}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            client.close()
    from jivex_core.engine import Engine

    waits = args.command in ("send", "move", "reload") and not args.no_wait
    # A retrieve needs our Storage SCP to receive what it asks for; only
    # the command's own jobs run, and only when it waits for them.
    engine = Engine(
        settings,
        network=waits and args.command in ("move", "reload"),
        lifetime=False,
        run_jobs="adopted" if waits else "none",
    )
    try:
        engine.start()
    except JivexError as exc:
        print(f"jivex {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    methods = engine.methods()

    def call(method: str, **params: Any) -> Any:
        return methods[method](params)

    try:
        return _run_command(args, _Session(call, settings.data_dir, engine))
    except ValueError as exc:
        print(f"jivex {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        asyncio.run(engine.shutdown())


def _run_command(args: argparse.Namespace, session: _Session) -> int:
    call = session.call
    if args.command == "key-images":
        return _key_images(args, call)
    if args.command == "jobs":
        return _jobs(args, session)
    if args.command == "delete":
        return _delete(args, call)
    if args.command == "reload":
        return _reload(args, session)
    if args.command == "find":
        return _find(args, call)
    if args.command == "move":
        return _move(args, session)
    return _send(args, session)


def _queued_note(session: _Session, jobs: list[dict]) -> None:
    """Say when queued jobs will run, if no core serves the data folder."""
    if session.served or not jobs:
        return
    ids = ", ".join(str(job["id"]) for job in jobs)
    print(
        f"jivex: job{'s' if len(jobs) > 1 else ''} {ids} queued; {_NOT_SERVED}",
        file=sys.stderr,
    )


def _held_until(job: dict) -> dt.datetime | None:
    """When a queued job that has not run yet is held to (``send_at``)."""
    if job["state"] != "queued" or not job.get("next_attempt_at"):
        return None
    at = dt.datetime.fromisoformat(job["next_attempt_at"])
    return at if at > dt.datetime.now() + dt.timedelta(seconds=2) else None


def _send(args: argparse.Namespace, session: _Session) -> int:
    job = session.call("send", to=args.to, uids=args.uids)
    # Inputs that name nothing stored are named; the rest goes (as delete).
    errors = job.pop("errors", [])
    for error in errors[:20]:
        print(f"jivex send: {error['error']}", file=sys.stderr)
    if len(errors) > 20:
        print(f"jivex send: … and {len(errors) - 20} more", file=sys.stderr)
    code = EXIT_PARTIAL if errors else EXIT_OK
    held = _held_until(job)
    if held is not None:
        # Held to the remote's send_at: no command waits for hours.
        if args.json:
            print(json.dumps(job, ensure_ascii=False, indent=1))
        else:
            print(f"job {job['id']}: queued, {counted(job['total'], 'object')}")
        print(
            f"jivex send: job {job['id']} is held until "
            f"{held.strftime('%Y-%m-%d %H:%M')} (local time), the send_at time "
            f"of '{job['remote_ae']}'; "
            + (
                "the core serving this data folder sends it then"
                if session.served
                else "it is sent then if `jivex server` or the workstation "
                "serves this data folder"
            ),
            file=sys.stderr,
        )
        return code
    if args.no_wait:
        _report(job, args.json)
        _queued_note(session, [job])
        return code
    session.run([job])
    return max(code, _report(_wait(job, session.call), args.json, session))


def _move(args: argparse.Namespace, session: _Session) -> int:
    from jivex_core.store.jobs import name_list

    call = session.call
    # A C-FIND first tells which inputs the remote has: a C-MOVE's counts
    # cannot say which UIDs of a list matched.
    result = call(
        "move",
        **{"from": args.source},
        level=args.level,
        uids=args.uids,
        study=args.study,
        check=not args.no_check,
    )
    jobs, errors = result["jobs"], result["errors"]
    if result["note"]:
        print(f"jivex move: {result['note']}", file=sys.stderr)
    for error in errors[:20]:
        print(f"jivex move: {error['error']}", file=sys.stderr)
    if len(errors) > 20:
        print(f"jivex move: … and {len(errors) - 20} more", file=sys.stderr)
    code = EXIT_PARTIAL if errors else EXIT_OK
    if args.no_wait:
        for job in jobs:
            _report(job, args.json)
        _queued_note(session, jobs)
        return code
    session.run(jobs)
    jobs = [_wait(job, call) for job in jobs]
    code = max(code, *(_report(job, args.json, session) for job in jobs))
    empty = [j for j in jobs if j["state"] == "done" and not j["total"]]
    if empty:
        asked = [
            uid
            for job in empty
            for key, value in job["request"].get("keys", {}).items()
            if key != "StudyInstanceUID" or job["request"].get("level") == "STUDY"
            for uid in str(value).split("\\")
        ]
        print(
            f"jivex move: '{args.source}' had nothing to send for " + name_list(asked),
            file=sys.stderr,
        )
        return max(code, EXIT_PARTIAL)
    return code


def _key_image_args(args: argparse.Namespace) -> None:
    """Check and parse ``key-images`` arguments; ConfigError when bad."""
    from jivex_core.imaging.ko import find_title
    from jivex_core.store.dicomfile import is_valid_uid

    try:
        args.title_code = find_title(args.title)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    images = []
    for text in args.images:
        uid, sep, frames_text = text.partition(":")
        if not is_valid_uid(uid):
            raise ConfigError(f"'{uid}' is not a SOP Instance UID")
        frames: list[int] = []
        if sep:
            for part in frames_text.split(","):
                if not part.strip().isdigit() or int(part) < 1:
                    raise ConfigError(
                        f"'{text}': frames are numbers from 1, separated by commas"
                    )
                frames.append(int(part))
        images.append((uid, frames))
    args.parsed_images = images


def _key_images(args: argparse.Namespace, call: Any) -> int:
    selection = {
        "images": [
            {"SOPClassUID": "", "SOPInstanceUID": uid, "frames": frames}
            for uid, frames in args.parsed_images
        ],
        "title": [
            args.title_code.value,
            args.title_code.scheme,
            args.title_code.meaning,
        ],
        "text": args.text,
        "creator": args.creator,
    }
    result = call("save_key_objects", selection=selection)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print(
            f"key object selection {result['SOPInstanceUID']} stored in series "
            f"{result['SeriesInstanceUID']}: {result['path']}"
        )
    return EXIT_OK


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.0f} kB"


def _delete(args: argparse.Namespace, call: Any) -> int:
    result = call("delete", uids=args.uids, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        verb = "would remove" if args.dry_run else "removed"
        for study in result["studies"]:
            whole = study["instances"] == study["of"]
            print(
                f"{verb}: {study['StudyInstanceUID']} {study['PatientID']} "
                f"{study['PatientName']} {study['StudyDate']}: "
                + ("all " if whole else "")
                + f"{study['instances']} of {counted(study['of'], 'object')}"
                + (
                    f", reload from {', '.join(study['origins'])}"
                    if study["origins"]
                    else ""
                )
            )
        studies = len(result["studies"])
        print(
            f"{verb} {counted(studies, 'study', 'studies')}, "
            f"{counted(result['instances'], 'object')} ({_size(result['size'])})",
            file=sys.stderr,
        )
    if result["not_reloadable"]:
        print(
            f"jivex delete: {result['not_reloadable']} of these objects "
            + ("was" if result["not_reloadable"] == 1 else "were")
            + " not retrieved from a configured remote AE: no reload can bring "
            + ("it" if result["not_reloadable"] == 1 else "them")
            + " back",
            file=sys.stderr,
        )
    for error in result["errors"]:
        print(f"jivex delete: {error['error']}", file=sys.stderr)
    return EXIT_PARTIAL if result["errors"] else EXIT_OK


def _reload(args: argparse.Namespace, session: _Session) -> int:
    call = session.call
    result = call("reload", uids=args.uids)
    jobs = result["jobs"]
    for error in result["errors"]:
        print(f"jivex reload: {error['error']}", file=sys.stderr)
    if args.no_wait:
        if args.json:
            print(json.dumps(jobs, ensure_ascii=False, indent=1))
        else:
            for job in jobs:
                print(
                    f"job {job['id']}: {job['state']}, reload from '{job['remote_ae']}'"
                )
        _queued_note(session, [j for j in jobs if j["state"] == "queued"])
        return EXIT_PARTIAL if result["errors"] else EXIT_OK
    session.run(jobs)
    jobs = [_wait(job, call) for job in jobs]
    code = max(_report(job, args.json, session) for job in jobs)
    if result["errors"]:
        code = max(code, EXIT_PARTIAL)
    if code == EXIT_OK:
        # What the jobs should have brought back and did not (objects whose
        # origin is unusable were reported above).
        origins = {job["remote_ae"] for job in jobs}
        left = [
            r for r in call("list_removed", uids=args.uids) if r["origin_ae"] in origins
        ]
        if left:
            print(
                f"jivex reload: {len(left)} of {counted(result['instances'], 'object')}"
                + (" is" if len(left) == 1 else " are")
                + " still removed: their origin did not send "
                + ("it" if len(left) == 1 else "them"),
                file=sys.stderr,
            )
            code = EXIT_PARTIAL
    return code


def _find(args: argparse.Namespace, call: Any) -> int:
    keys = {}
    for text in args.keys:
        keyword, sep, value = text.partition("=")
        if not sep or not keyword.strip():
            raise ValueError(f"'{text}' is not KEY=VALUE (a DICOM keyword)")
        keys[keyword.strip()] = value
    result = call(
        "find", **{"from": args.source}, level=args.level, keys=keys, limit=args.limit
    )
    rows = result["rows"]
    if not rows and not args.json:
        print("jivex find: no matches", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        _print_table(columns, [[row.get(c, "") for c in columns] for row in rows])
    for error in result["errors"]:
        print(f"jivex find: {error}", file=sys.stderr)
    if result["truncated"]:
        limit = (
            "--limit"
            if args.limit
            else f"the max_query_results of '{args.source}'; --limit N changes it"
        )
        print(
            f"jivex find: cancelled after {counted(len(rows), 'answer')} ({limit})",
            file=sys.stderr,
        )
    return EXIT_PARTIAL if result["errors"] or result["truncated"] else EXIT_OK


def _print_table(columns: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _wait(job: dict, call: Any) -> dict:
    """Poll *job* until the attempt it is due for has an outcome: finished,
    or queued again for a later attempt (or held to a later time).

    A job waiting to retry that the command asked to run now (``reload``
    reusing it) is queued with its earlier attempts: those are not this
    outcome, the next attempt's is.
    """
    done_attempts = job["attempts"] - (job["state"] == "running")
    while job["state"] not in _FINISHED:
        if job["state"] == "queued" and (
            job["attempts"] > done_attempts or _held_until(job) is not None
        ):
            break
        time.sleep(0.2)
        job = call("job", id=job["id"])
    return job


def _report(job: dict, as_json: bool, session: _Session | None = None) -> int:
    if as_json:
        print(json.dumps(job, ensure_ascii=False, indent=1))
    else:
        print(
            f"job {job['id']}: {job['state']}, {job['completed']} stored, "
            f"{job['warning']} with warnings, {job['failed']} failed, "
            f"{job['remaining']} remaining"
        )
    if job["last_error"] and job["state"] != "cancelled":
        print(f"jivex: job {job['id']}: {job['last_error']}", file=sys.stderr)
    if job["state"] == "queued" and job["attempts"]:
        print(
            f"jivex: job {job['id']} will be tried again at {job['next_attempt_at']}"
            + (
                " (see jivex jobs)"
                if session is None or session.served
                else " if `jivex server` or the workstation serves this data folder"
            ),
            file=sys.stderr,
        )
    if job["state"] == "done":
        return EXIT_PARTIAL if job["failed"] else EXIT_OK
    if job["state"] == "queued" and not job["attempts"]:
        return EXIT_OK  # queued, not waited for
    return EXIT_FAILURE


def _jobs(args: argparse.Namespace, session: _Session) -> int:
    call = session.call
    for option, method in ((args.cancel, "cancel_job"), (args.retry, "retry_job")):
        if option is not None:
            job = call(method, id=option)
            if args.json:
                print(json.dumps(job, ensure_ascii=False, indent=1))
            else:
                print(f"job {job['id']}: {job['state']}")
            if job["state"] == "queued":
                _queued_note(session, [job])
            return EXIT_OK
    jobs = call("jobs")
    if args.json:
        print(json.dumps(jobs, ensure_ascii=False, indent=1))
    else:
        columns = ["id", "kind", "state", "remote_ae", "total", "completed"]
        columns += ["failed", "attempts", "next_attempt_at", "last_error"]
        rows = [
            [str(job.get(c) if job.get(c) is not None else "") for c in columns]
            for job in jobs
        ]
        _print_table(columns, rows)
    if not session.served and any(job["state"] == "queued" for job in jobs):
        print(
            f"jivex jobs: no core serves '{session.data_dir}': queued jobs run "
            "when `jivex server` or the workstation serves it",
            file=sys.stderr,
        )
    return EXIT_OK
