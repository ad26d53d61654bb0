"""``python -m bench growth``: the writer's time per event and peak RSS as the ledger grows (1 M, 10 M, ...).

One long drain: the topics are filled with the workload's stream repeated with fresh tenants (a chunk per
token) up to the largest size, then one writer process drains them all, reporting consumed records, RSS
and peak RSS (VmHWM) every two seconds. At each size the figures are: time per event over the last 10 %
before it (so it reflects the ledger's size then) and the peak RSS reached by then. Not for CI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.env import BenchEnv, ensure_mode_topics, fresh_database
from bench.procs import run_child
from bench.publish import produce, stream_items
from bench.stream import build_template, token


def checkpoints(progress: Sequence[dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for size in sizes:
        crossing = next((p for p in progress if p["consumed"] >= size), None)
        if crossing is None:
            out.append({"size": size, "reached": False})
            continue
        low = [p for p in progress if p["consumed"] <= 0.9 * size] or [progress[0]]
        start = low[-1]
        span = crossing["consumed"] - start["consumed"]
        us = (crossing["t"] - start["t"]) / span * 1e6 if span > 0 else None
        out.append(
            {
                "size": size,
                "reached": True,
                "at_records": crossing["consumed"],
                "us_per_event_last_10pct": round(us, 1) if us is not None else None,
                "events_per_s_last_10pct": round(1e6 / us, 1) if us else None,
                "rss_mb": round(crossing["rss_kb"] / 1024, 1),
                "peak_rss_mb": round(crossing["hwm_kb"] / 1024, 1),
            }
        )
    return out


async def run_growth(
    env: BenchEnv, sizes: Sequence[int], *, chunk_events: int = 200_000, log: Callable[[str], None] = print
) -> dict[str, Any]:
    sizes = sorted(sizes)
    total = sizes[-1]
    await fresh_database(env)
    template = build_template(min(chunk_events, total))
    per_chunk = template.counts["records"]
    chunks = math.ceil(total / per_chunk)
    settings = env.settings("growth")
    await ensure_mode_topics(settings)
    started = time.monotonic()
    produced = 0
    for i in range(chunks):
        produced += await produce(
            settings, stream_items(template.variant(token(env.run_tag, "g", i)), settings.topic_prefix)
        )
        log(f"  filled {produced:,} of {chunks * per_chunk:,} records ({time.monotonic() - started:.0f}s)")
    result = await run_child("drain", settings, {"report_every": 2.0}, env.state / "logs")
    progress = result.pop("progress", [])
    progress.append(
        {"t": result["seconds"], "consumed": result["records"], "rss_kb": 0, "hwm_kb": result["peak_rss_mb"] * 1024}
    )
    points = checkpoints(progress, sizes)
    reached = [p for p in points if p.get("reached")]
    rss_ratio = round(reached[-1]["peak_rss_mb"] / reached[0]["peak_rss_mb"], 3) if len(reached) > 1 else None
    time_ratio = None
    if len(reached) > 1 and reached[0]["us_per_event_last_10pct"]:
        time_ratio = round(reached[-1]["us_per_event_last_10pct"] / reached[0]["us_per_event_last_10pct"], 3)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_tag": env.run_tag,
        "sizes": list(sizes),
        "records_produced": produced,
        "drain": result,
        "checkpoints": points,
        "rss_ratio": rss_ratio,
        "time_per_event_ratio": time_ratio,
        "progress": progress,
    }


def growth_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Writer growth, {doc['date']} (run {doc['run_tag']})",
        "",
        f"One drain of {doc['records_produced']:,} records: {doc['drain']['rate']:,.0f} records/s overall, "
        f"peak RSS {doc['drain']['peak_rss_mb']:.0f} MB.",
        "",
        "| ledger size (records) | µs/event (last 10 %) | events/s (last 10 %) | RSS MB | peak RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in doc["checkpoints"]:
        if not p.get("reached"):
            lines.append(f"| {p['size']:,} | not reached | | | |")
            continue
        lines.append(
            f"| {p['size']:,} | {p['us_per_event_last_10pct']} | {p['events_per_s_last_10pct']} | "
            f"{p['rss_mb']} | {p['peak_rss_mb']} |"
        )
    lines += [
        "",
        f"Peak RSS ratio (largest / smallest size): {doc['rss_ratio']} (target <= 1.10); "
        f"time per event ratio: {doc['time_per_event_ratio']}.",
    ]
    return "\n".join(lines) + "\n"


def write_growth(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = datetime.now(UTC).strftime("%Y-%m-%dT%H%M") + "-growth"
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md"]
    paths[0].write_text(json.dumps(doc, indent=2, default=str) + "\n")
    paths[1].write_text(growth_markdown(doc))
    return paths
