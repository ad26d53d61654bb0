"""Log lines for people and for log shippers, and progress that redraws only on a terminal.

Lifecycle events (``consumers.writer.lifecycle``) carry their fields (topic, partition, offset, tenant, ...) in
``record.fields``: the text format appends them as ``key=value``, the JSON format (``--log-format json``) puts
them at the top level of one JSON object per line, so a shipper needs no pattern to parse them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    """The message, then the event's fields as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if not fields:
            return line
        head, _, tail = line.partition("\n")  # a traceback stays below the fields
        head += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return head + ("\n" + tail if tail else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, event fields, and a traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, sort_keys=False)


def configure(log_format: str, *, verbose: bool) -> None:
    """Our loggers at INFO (lifecycle events are INFO), third-party ones at WARNING unless ``--verbose``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("selene").setLevel(logging.INFO)


def progress_printer(
    render: Callable[[Any], str], *, label: str, stream: TextIO | None = None, every: float = 10.0
) -> Callable[[Any], None]:
    """A progress callback: on a terminal, one line redrawn with ``\\r``; otherwise (a pipe, docker logs, CI)
    an INFO log line at most every ``every`` seconds, so nothing is ever joined by carriage returns."""
    out = stream or sys.stderr
    logger = logging.getLogger(f"selene.{label}")
    last = [-float("inf")]

    def report(stats: Any) -> None:
        text = render(stats)
        if out.isatty():
            print(f"\r{text}", end="", file=out, flush=True)
            return
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            logger.info("progress: %s", text.strip(), extra={"fields": {"event": "progress"}})

    return report


def end_progress(stream: TextIO | None = None) -> None:
    """End a redrawn progress line (on a terminal only: elsewhere there is none)."""
    out = stream or sys.stderr
    if out.isatty():
        print(file=out, flush=True)
