"""One benchmark mode in its own process: ``python -m bench.child`` reads a JSON spec on stdin and prints
``RESULT <json>`` as its last line.

Why a process per mode: its peak RSS is the mode's own (not the orchestrator's, which holds the workload),
a profiler can attach to exactly one mode, and a mode cannot leave state behind for the next.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.env import settings_from_json
from cli import loop
from contracts.settings import Settings

Result = dict[str, Any]


@dataclass(frozen=True)
class Spec:
    """What the orchestrator asks a child to do."""

    mode: str
    settings: Settings
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def template(self) -> Path:
        return Path(self.params["template"])

    @property
    def min_seconds(self) -> float:
        return float(self.params.get("min_seconds", 0.0))

    @property
    def run_tag(self) -> str:
        return str(self.params["run_tag"])


def peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM, which exec resets (``ru_maxrss`` would keep the forking
    parent's peak, here the orchestrator's)."""
    return proc_status_kb("VmHWM") / 1024


def proc_status_kb(field_name: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def rate_result(records: int, seconds: float, **extra: Any) -> Result:
    return {
        "records": records,
        "seconds": round(seconds, 3),
        "rate": round(records / seconds, 1) if seconds > 0 else 0.0,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **extra,
    }


def emit(kind: str, doc: Result) -> None:
    print(f"{kind} {json.dumps(doc, default=str)}", flush=True)


def _modes() -> dict[str, Callable[[Spec], Coroutine[Any, Any, Result]]]:
    from bench import latency, modes_db, modes_kafka, publish

    return {
        "L0": modes_db.run_l0,
        "L1": modes_db.run_l1,
        "L2": modes_db.run_l2,
        "L3": modes_kafka.run_l3,
        "drain": modes_kafka.run_drain,
        "replay": modes_kafka.run_replay,
        "naive": modes_kafka.run_naive,
        "publisher": publish.run_publisher,
        "latency_writer": latency.run_latency_writer,
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    doc = json.loads(sys.stdin.read())
    spec = Spec(doc["mode"], settings_from_json(doc["settings"]), doc.get("params", {}))
    started = time.monotonic()
    result: Result = loop.run(_modes()[spec.mode](spec))
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)  # this process's, not the machine's
    result["event_loop"] = loop.loop_name()
    result["process_seconds"] = round(time.monotonic() - started, 3)
    emit("RESULT", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
