"""The rules of "Show removed", "Reload" and "Delete…" of the Local tab,
without Qt: which rows can be reloaded or deleted, how a removed row is
marked, and what the confirmation and the reports say.

Rows are the core's ``list_studies`` rows with ``removed`` asked for
(:mod:`jivex_core.protocol`): ``Removed`` is true for a study removed whole,
``RemovedInstances`` counts what was removed of any study. Texts go through
the *tr* the caller passes (a widget's ``tr``), so they stay translatable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jivex_client.text import (
    count_text,
    format_date,
    format_person_name,
    patients_text,
)

Row = dict[str, Any]
Translate = Callable[[str], str]


def _same(text: str) -> str:
    return text


def is_removed(row: Row) -> bool:
    """Whether the study (or series) was removed whole: nothing is local."""
    return bool(row.get("Removed"))


def removed_count(row: Row) -> int:
    """How many of its objects were removed locally."""
    return int(row.get("RemovedInstances") or 0)


def reloadable(rows: Sequence[Row]) -> list[Row]:
    """The rows with something removed, that Reload can fetch again."""
    return [row for row in rows if removed_count(row) > 0]


def deletable(rows: Sequence[Row]) -> list[Row]:
    """The rows with something stored locally, that Delete can remove."""
    return [row for row in rows if not is_removed(row)]


def removed_text(row: Row, tr: Translate = _same) -> str:
    """The mark of the "Removed" column: when a study removed whole went,
    how many objects of a study that stays went; empty for the others."""
    count = removed_count(row)
    if is_removed(row):
        when = str(row.get("RemovedAt") or "")[:10]
        return tr("removed {date}").format(date=when) if when else tr("removed")
    if count:
        return count_text(count, tr("{n} image removed"), tr("{n} images removed"))
    return ""


def origins_text(row: Row, tr: Translate = _same) -> str:
    """Where Reload fetches a row's removed objects from."""
    origins = [o for o in row.get("RemovedFrom") or [] if o]
    if not origins:
        return tr("no configured archive (cannot be reloaded)")
    return ", ".join(origins)


def _size(size: int) -> str:
    if size >= 2**30:
        return f"{size / 2**30:.1f} GB"
    if size >= 2**20:
        return f"{size / 2**20:.1f} MB"
    return f"{max(size, 0) / 1024:.0f} kB"


#: Studies a confirmation names one by one; more are counted.
NAMED_STUDIES = 6


def delete_question(preview: dict[str, Any], tr: Translate = _same) -> str:
    """The question of the confirmation: what will be removed, from the
    core's dry run of ``delete``."""
    studies = preview.get("studies") or []
    return tr(
        "Remove {studies} ({images}, {size}) of {who} from this workstation?"
    ).format(
        studies=count_text(len(studies), tr("{n} study"), tr("{n} studies")),
        images=count_text(
            int(preview.get("instances") or 0), tr("{n} image"), tr("{n} images")
        ),
        size=_size(int(preview.get("size") or 0)),
        who=patients_text(studies, tr),
    )


def delete_details(preview: dict[str, Any], tr: Translate = _same) -> str:
    """The lines under the question: each study, where a reload would come
    from, and a warning for what no reload can bring back."""
    studies = preview.get("studies") or []
    lines = []
    for study in studies[:NAMED_STUDIES]:
        part = ""
        if int(study.get("instances") or 0) != int(study.get("of") or 0):
            part = " " + tr("({count} of {total} images)").format(
                count=study.get("instances"), total=study.get("of")
            )
        lines.append(
            "• "
            + " – ".join(
                t
                for t in (
                    format_date(str(study.get("StudyDate") or "")),
                    format_person_name(str(study.get("PatientName") or "")),
                    str(study.get("StudyDescription") or ""),
                )
                if t
            )
            + part
        )
    if len(studies) > NAMED_STUDIES:
        lines.append(
            tr("… and {count} more").format(count=len(studies) - NAMED_STUDIES)
        )
    origins = preview.get("origins") or []
    lost = int(preview.get("not_reloadable") or 0)
    if origins:
        lines.append("")
        lines.append(
            tr("Reload fetches them again from {origins}.").format(
                origins=", ".join(origins)
            )
        )
    if lost:
        lines.append("")
        lines.append(
            count_text(
                lost,
                tr(
                    "{n} image was not retrieved from a configured archive: "
                    "no reload can bring it back."
                ),
                tr(
                    "{n} images were not retrieved from a configured archive: "
                    "no reload can bring them back."
                ),
            )
        )
    return "\n".join(lines)


def deleted_text(result: dict[str, Any], tr: Translate = _same) -> str:
    """The report once the core removed them."""
    studies = result.get("studies") or []
    return tr("Removed {studies} ({images}) from this workstation.").format(
        studies=count_text(len(studies), tr("{n} study"), tr("{n} studies")),
        images=count_text(
            int(result.get("instances") or 0), tr("{n} image"), tr("{n} images")
        ),
    )


def reload_text(result: dict[str, Any], tr: Translate = _same) -> str:
    """The report once the core queued a reload: how many images come back
    from where, and the jobs to watch."""
    jobs = result.get("jobs") or []
    origins = sorted({str(job.get("remote_ae")) for job in jobs})
    return tr("Reloading {images} from {origins} ({jobs}); see Jobs.").format(
        images=count_text(
            int(result.get("instances") or 0), tr("{n} image"), tr("{n} images")
        ),
        origins=", ".join(origins),
        jobs=", ".join(tr("job {id}").format(id=job.get("id")) for job in jobs),
    )
