"""A batch job's output files: previews of their first lines, downloads by position, the failed lines,
and the file of failed inputs that "Re-run failed lines" writes. Every read and write goes through the
job's role, as the job's own did."""

import json
import re
from pathlib import PurePosixPath

from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404

from batchjobs.errors import RoleDenied
from batchjobs.models import BatchJob, Status
from batchjobs.storage import role_storage
from engine.storage import StorageError

PREVIEW_LINES = 10


PREVIEW_FILES = 3


PREVIEW_LINE_BYTES = 64 * 1024


def _item_cells(items: list, scores: list | None, titles: dict[str, str]) -> list[dict]:
    scores = scores if isinstance(scores, list) else []
    cells = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        cells.append(
            {
                "id": str(item),
                "title": titles.get(str(item), ""),
                "score": scores[i] if i < len(scores) else None,
            }
        )
    return cells


def preview(job, uri: str, titles: dict[str, str] | None = None) -> dict:
    """The first lines of an output file as table rows: the input, the recommended items (with their
    titles from the Items dataset), scores and error. Lines that are not JSON show as raw text. Read as the
    job's role reads."""
    titles = titles or {}
    rows, error = [], ""
    try:
        with role_storage(job.role).open_read(uri) as handle:
            for number, raw in enumerate(handle, start=1):
                if len(rows) >= PREVIEW_LINES:
                    break
                text = raw[:PREVIEW_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r\n")
                row = {"number": number, "raw": text, "input": [], "items": [], "error": ""}
                try:
                    line = json.loads(text)
                except ValueError:
                    rows.append(row)
                    continue
                if not isinstance(line, dict):
                    rows.append(row)
                    continue
                query = line.get("input")
                if isinstance(query, dict):
                    for key in ("userId", "itemId", "itemList"):
                        if key in query:
                            value = query[key]
                            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                            row["input"].append((key, shown))
                else:
                    row["input"].append(("input", json.dumps(query, ensure_ascii=False)))
                output = line.get("output") if isinstance(line.get("output"), dict) else {}
                if "recommendedUsers" in output:
                    row["items"] = _item_cells(output.get("recommendedUsers", []), None, {})
                else:
                    row["items"] = _item_cells(output.get("recommendedItems", []), output.get("scores"), titles)
                row["has_scores"] = isinstance(output.get("scores"), list)
                row["error"] = line.get("error") or ""
                rows.append(row)
    except (StorageError, OSError, RoleDenied) as exc:
        error = f"The file could not be read: {exc}"
    return {"uri": uri, "rows": rows, "error": error}


def safe_filename(uri: str) -> str:
    name = PurePosixPath(uri.rsplit("/", 1)[-1]).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "output.out"


def output_download(job, index: int) -> FileResponse:
    # Only the job's own recorded outputs are served: the URL names a position, never a path.
    if job.status != Status.ACTIVE or not 0 <= index < len(job.output_files):
        raise Http404("No such output file.")
    uri = job.output_files[index]
    try:
        handle = role_storage(job.role).open_read(uri)
    except RoleDenied as exc:
        raise PermissionDenied(str(exc)) from None
    except (StorageError, OSError):
        raise Http404("The output file is no longer there.") from None
    return FileResponse(handle, as_attachment=True, filename=safe_filename(uri), content_type="application/json")


_OK_LINE_END = b',"error":null}'


def iter_failed_lines(storage, uris):
    """The output lines whose "error" is not null, streamed file by file, one line in memory at a time."""
    for uri in uris:
        try:
            handle = storage.open_read(uri)
        except (StorageError, OSError):
            continue
        with handle:
            for raw in handle:
                stripped = raw.rstrip(b"\r\n")
                if not stripped or stripped.endswith(_OK_LINE_END):
                    continue
                try:
                    line = json.loads(stripped)
                except ValueError:
                    continue
                if isinstance(line, dict) and line.get("error") is not None:
                    yield line, stripped + b"\n"


def failed_outputs(job: BatchJob) -> list[str]:
    if job.status != Status.ACTIVE or not job.lines_failed:
        raise Http404("This job has no failed lines.")
    return list(job.output_files)


def failed_inputs_uri(job: BatchJob, taken=lambda uri: False) -> str:
    """Where "Re-run failed lines" writes the failed lines' inputs: beside the outputs, under a name that
    `taken` does not refuse (an existing object is never overwritten)."""
    base = job.output_path.rstrip("/") + f"/{job.job_name}-failed-inputs"
    for number in range(1, 1000):
        uri = f"{base}.json" if number == 1 else f"{base}-{number}.json"
        if not taken(uri):
            return uri
    raise StorageError(f"there are already 999 files named {base}*.json; remove some and try again")


def rerunnable_inputs(storage, uris) -> tuple[list[dict], int]:
    """The failed lines' inputs that can run again as they are (JSON objects), and how many cannot."""
    queries = [line.get("input") for line, _ in iter_failed_lines(storage, uris)]
    rerunnable = [query for query in queries if isinstance(query, dict)]
    return rerunnable, len(queries) - len(rerunnable)


def write_inputs(storage, uri: str, queries: list[dict]) -> None:
    with storage.atomic_writer(uri) as out:
        for query in queries:
            out.write(json.dumps(query, ensure_ascii=False).encode("utf-8") + b"\n")
