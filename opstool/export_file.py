"""The export file: one JSON object per line per dead-lettered message, enough to inspect or re-send it.

Each line holds the queue and namespace, the body (UTF-8 text, or base64 when it is not text: ``body_encoding``
says which), the message properties, every application property (binary values as ``{"base64": ...}``), the
broker's annotations (sequence number, enqueued time, delivery count, dead-letter reason, description and source,
and the raw annotation map) and the event fields the tool read from the body. Files are created new (never
overwritten), readable by their owner only: a body may hold personal data.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from .dead_letters import DeadLetter, iso, jsonable
from .output import redact
from .safe_json import dumps_line, load_json

FORMAT = "opstool.dead-letter-export/1"


def default_export_path(queue: str, now: dt.datetime | None = None) -> Path:
    now = now or dt.datetime.now(dt.timezone.utc)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in queue)
    return Path(f"dlq-export-{safe}-{now.strftime('%Y%m%dT%H%M%SZ')}.jsonl")


def export_record(dl: DeadLetter, *, queue: str, namespace: str, exported_at: dt.datetime,
                  redacted: bool = False) -> dict:
    text, encoding = dl.body_text()
    app_props = jsonable(dl.application_properties)
    if redacted:
        app_props = redact(app_props)
        if encoding == "utf-8":
            doc, problem = load_json(text)
            if problem is None:
                text = dumps_line(redact(doc), ascii_only=False)
    return {
        "format": FORMAT,
        "namespace": namespace,
        "queue": queue,
        "sub_queue": "deadletter",
        "exported_at": iso(exported_at),
        "sequence_number": dl.sequence_number,
        "message_id": dl.message_id,
        "body_type": dl.body_type,
        "body_encoding": encoding,
        "body": text,
        "properties": dl.properties(),
        "application_properties": app_props,
        "annotations": dl.broker_annotations(),
        "event": asdict(dl.event),
        "redacted": redacted,
    }


def write_export(path: str | os.PathLike, messages: Iterable[DeadLetter], *, queue: str, namespace: str,
                 redacted: bool = False) -> int:
    """Write every message to a NEW file, flush and fsync it and its directory; return how many were written.
    ``-`` writes to stdout (no durability: not for purge)."""
    now = dt.datetime.now(dt.timezone.utc)
    # Non-ASCII stays readable in the file, but on stdout (-o -) the line is pure ASCII like every --json line.
    lines = (dumps_line(export_record(m, queue=queue, namespace=namespace, exported_at=now, redacted=redacted),
                        ascii_only=str(path) == "-") + "\n" for m in messages)
    if str(path) == "-":
        count = 0
        for line in lines:
            sys.stdout.write(line)
            count += 1
        sys.stdout.flush()
        return count
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
                count += 1
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # a partial export must not pass for a complete one
        raise
    _fsync_directory(path.resolve().parent)
    return count


def _fsync_directory(folder: Path) -> None:
    """Make the file's directory entry durable too (a crash right after could otherwise lose the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the file itself is synced
    finally:
        os.close(fd)


def read_export(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
