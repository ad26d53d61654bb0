"""A run's results as JSON, a markdown table and a PNG chart, with the issue's ratios and targets."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.peer import POM as PEER_POM

RESULTS_DIR = Path(__file__).resolve().parent / "results"
THROUGHPUT_MODES = ("L0", "L1", "L2", "L3", "drain", "replay", "naive", "peer", "peer_fair")
MODE_NOTES = {
    "L0": "L0 SQL alone: INSERT ... SELECT of the same rows from a staging table, as the writer role (RLS, FKs, "
    "indexes on), one transaction per 2000 (the database's ceiling; rows/s)",
    "L1": "L1 client COPY + Python chain: binary COPY of the same rows as superuser (no RLS), chain links hashed in "
    "Python in the clock, one transaction per 2000 (rows/s)",
    "L2": "the writer's batch transaction from pre-built records, no Kafka",
    "L3": "Kafka getmany + decode + contract validation, discarded (read ceiling)",
    "drain": "the real LedgerWriter draining a pre-filled topic until caught up",
    "replay": "consumers.replay.Replayer rebuilding the shadow tables from the topic, no verify",
    "naive": "per message: validate, INSERT the row, COMMIT; Kafka commit per fetch",
    "peer": "Debezium JDBC sink on Kafka Connect, JSON with schemas, upsert on the idempotency key into a "
    "two-index table of its own as the owner (no RLS, foreign keys, chain or projections)",
    "peer_fair": "the same sink into the busiest real ledger (every index, check, FK it has, forced RLS) as the "
    "writer role, tenant scope set at connect; rows pre-built untimed (chain linked, no re-sends), one ledger, "
    "no projections (rows/s)",
    "publisher": "Publisher.publish_many (validating) vs raw aiokafka send_batch",
}
#: what the chart's bars say under each mode (the baselines named by what they measure)
CHART_LABELS = {
    "L0": "L0 SQL alone (INSERT...SELECT, rows/s)",
    "L1": "L1 client COPY + chain (rows/s)",
    "L2": "L2 writer's transaction, no Kafka",
    "L3": "L3 Kafka read + decode only",
    "drain": "drain: the writer, Kafka to ledgers",
    "replay": "replay: topics to shadow projections",
    "naive": "naive: a commit per message",
    "peer": "peer (Debezium): own 2-index table",
    "peer_fair": "peer (Debezium): real ledger, writer role",
    "publisher": "publisher (validating)",
    "raw": "raw aiokafka producer",
}
# (name, numerator, denominator or None, comparison, target): issue 18's targets, then issue 7's that stay
TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    ("drain / peer", "drain", "peer", ">=", 1.2),
    ("drain / fair peer (real ledger, writer role)", "drain", "peer_fair", ">=", 1.2),
    ("drain / L3", "drain", "L3", ">=", 0.7),
    ("drain / L0", "drain", "L0", ">=", 0.5),
    ("p99 at 50 % load (ms)", "latency", "", "<=", 50.0),
    ("publisher / raw", "publisher", "raw", ">=", 0.9),
    ("writer peak RSS 10M / 1M", "growth", "", "<=", 1.10),
    ("drain / L2", "drain", "L2", ">=", 0.6),
    ("drain / naive", "drain", "naive", ">=", 30.0),
    ("replay / drain", "replay", "drain", ">=", 3.0),
)


def _rate(modes: dict[str, Any], name: str) -> float | None:
    if name in ("publisher", "raw"):
        pub = modes.get("publisher")
        return float(pub[name]["rate"]) if pub else None
    m = modes.get(name)
    return float(m["rate"]) if m and m.get("rate") else None


def ratios(modes: dict[str, Any], growth: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out = []
    for name, num, den, cmp, target in TARGETS:
        value: float | None = None
        if num == "latency":
            level = (modes.get("latency") or {}).get("levels", {}).get("50%", {})
            value = level.get("p99_ms")
        elif num == "growth":
            value = (growth or {}).get("rss_ratio")
        else:
            a, b = _rate(modes, num), _rate(modes, den)
            value = round(a / b, 3) if a is not None and b else None
        met = None if value is None else (value >= target if cmp == ">=" else value <= target)
        out.append({"name": name, "value": value, "target": f"{cmp} {target:g}", "met": met})
    return out


def _cmd(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (done.stdout or done.stderr).strip()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    pom = PEER_POM.read_text()
    out = {p: metadata.version(p) for p in ("aiokafka", "asyncpg", "pydantic", "pydantic-core")}
    out["kafka_broker"] = "4.4.0 (services/kafka/pom.xml)"
    out["kafka_connect"] = re.findall(r"<connect.version>(.*?)<", pom)[0]
    out["debezium_connector_jdbc"] = re.findall(r"<debezium.version>(.*?)<", pom)[0]
    out["java"] = _cmd("java", "-version").splitlines()[0] if _cmd("java", "-version") else "unavailable"
    root = Path(__file__).resolve().parent.parent
    out["git_commit"] = _cmd("git", "-C", str(root), "rev-parse", "--short", "HEAD")
    dirty = _cmd("git", "-C", str(root), "status", "--porcelain", "--untracked-files=no")
    out["git_dirty_files"] = ", ".join(line.split(maxsplit=1)[-1] for line in dirty.splitlines() if line) or "none"
    return out


def build(run: Any, postgres: dict[str, str], growth: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result document of a run (``run`` is a ``bench.runner.Run``)."""
    settings = run.env.settings("drain")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_tag": run.env.run_tag,
        "config": asdict(run.config),
        "machine": machine(),
        "versions": versions(),
        "postgres": postgres,
        "writer_settings": {
            "batch_max_records": settings.batch_max_records,
            "topic_partitions": settings.topic_partitions,
            "max_event_bytes": settings.max_event_bytes,
        },
        "workload": run.template.counts,
        "modes": run.modes,
        "errors": run.errors,
        "ratios": ratios(run.modes, growth),
    }


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(doc: dict[str, Any]) -> str:
    m, modes = doc["machine"], doc["modes"]
    lines = [
        f"# Selene Ledger benchmark, {doc['date']} (run {doc['run_tag']})",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; PostgreSQL {doc['postgres'].get('server_version')} "
        f"(synchronous_commit={doc['postgres'].get('synchronous_commit')}); workload {doc['workload']}",
        "",
        "| mode | records | seconds | records/s | peak RSS (MB) | load 1m before/after | what |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name in (*THROUGHPUT_MODES, "publisher", "raw"):
        if name in ("publisher", "raw"):
            r = (modes.get("publisher") or {}).get(name)
            note = MODE_NOTES["publisher"] if name == "publisher" else "raw aiokafka send_batch, same payloads"
        else:
            r = modes.get(name)
            note = MODE_NOTES[name]
        if r is None:
            err = doc["errors"].get(name if name != "raw" else "publisher")
            if err:
                lines.append(f"| {name} | - | - | - | - | - | **failed**: {err.splitlines()[0][:160]} |")
            continue
        extra = " (time-capped)" if r.get("capped") else ""
        load = (modes.get(name) or modes.get("publisher") or {}).get("loadavg_1m")
        load_text = f"{load[0]:.1f} / {load[1]:.1f}" if load else "-"
        lines.append(
            f"| {name} | {_fmt(r.get('records'))} | {_fmt(r.get('seconds'), 1)} | {_fmt(r.get('rate'))} | "
            f"{_fmt(r.get('peak_rss_mb'), 0)} | {load_text} | {note}{extra} |"
        )
    lat = modes.get("latency")
    if lat:
        lines += [
            "",
            f"Latency, produce -> committed in PostgreSQL (drain capacity {_fmt(lat['capacity_rate'])} records/s):",
            "",
            "| load | target/s | achieved/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | samples |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for level, v in lat["levels"].items():
            lines.append(
                f"| {level} | {_fmt(v['target_rate'])} | {_fmt(v['achieved_rate'])} | {_fmt(v.get('p50_ms'), 1)} | "
                f"{_fmt(v.get('p95_ms'), 1)} | {_fmt(v.get('p99_ms'), 1)} | {_fmt(v.get('p99_9_ms'), 1)} | "
                f"{_fmt(v.get('max_ms'), 1)} | {_fmt(v.get('samples'))} |"
            )
    lines += _scale_lines(modes)
    lines += ["", "| ratio | measured | target | met |", "| --- | ---: | --- | --- |"]
    for r in doc["ratios"]:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['name']} | {_fmt(r['value'], 2)} | {r['target']} | {met} |")
    if doc["errors"]:
        lines += ["", "Errors:", ""]
        for name, err in doc["errors"].items():
            lines += [f"- **{name}**:", "", "```", err[:3000], "```"]
    return "\n".join(lines) + "\n"


def _scale_lines(modes: dict[str, Any]) -> list[str]:
    """Scale-out: writer processes in one consumer group, against one writer (``drain``) in the same run."""
    scale, drain = (modes.get("scale") or {}).get("writers"), modes.get("drain")
    if not scale:
        return []
    one = float(drain["rate"]) if drain and drain.get("rate") else None
    lines = [
        "",
        "Scale-out, writer processes as one consumer group (same stream, fresh ids each; wall time from the first "
        "start to the last record):",
        "",
        "| writers | records | seconds | records/s | vs 1 writer | per writer (records/s) |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    if one and drain:
        lines.append(
            f"| 1 | {_fmt(drain.get('records'))} | {_fmt(drain.get('seconds'), 1)} | {_fmt(one)} | 1.00 | drain |"
        )
    for n, v in scale.items():
        vs = f"{v['rate'] / one:.2f}" if one else "-"
        per = ", ".join(_fmt(w.get("rate")) for w in v["per_writer"])
        lines.append(f"| {n} | {_fmt(v['records'])} | {_fmt(v['seconds'], 1)} | {_fmt(v['rate'])} | {vs} | {per} |")
    return lines


def chart_available() -> bool:
    """matplotlib comes with the ``bench`` extra; without it a run's results are the JSON and markdown."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = doc["modes"]
    names, rates = [], []
    for name in (*THROUGHPUT_MODES, "publisher", "raw"):
        rate = _rate(modes, name)
        if rate:
            names.append(name)
            rates.append(rate)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
    labels = [CHART_LABELS.get(n, n) for n in names]
    # Horizontal bars: the labels (what each mode is) read in full, none on top of another.
    bars = left.barh(labels, rates, color=["#4c72b0" if n != "drain" else "#dd8452" for n in names])
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("records/s (log scale); drain, the real writer with every guarantee, in orange")
    left.set_title("Throughput by mode")
    for bar, rate in zip(bars, rates, strict=True):
        left.annotate(f" {rate:,.0f}", (rate, bar.get_y() + bar.get_height() / 2), ha="left", va="center", fontsize=8)
    left.set_xlim(right=max(rates, default=1) * 3)
    lat = (modes.get("latency") or {}).get("levels", {})
    keys = ("p50_ms", "p95_ms", "p99_ms", "p99_9_ms")
    width = 0.2
    for i, key in enumerate(keys):
        xs = [j + (i - 1.5) * width for j in range(len(lat))]
        right.bar(xs, [v.get(key, 0) for v in lat.values()], width, label=key.replace("_ms", "").replace("_", "."))
    right.set_xticks(range(len(lat)), [f"{k} load" for k in lat])
    right.set_ylabel("ms, produce -> committed")
    capacity = (modes.get("latency") or {}).get("capacity_rate")
    share = f" of {capacity:,.0f} records/s" if capacity else ""
    right.set_title(f"Latency produce -> commit, by load{share}")
    right.axhline(50, color="grey", linestyle="--", linewidth=1, label="50 ms target (p99 at 50 %)")
    right.legend()
    fig.suptitle(f"Selene Ledger benchmark {doc['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(doc: dict[str, Any], out_dir: Path = RESULTS_DIR, stem: str | None = None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
    """Write the run's JSON, markdown and (with matplotlib installed: ``pip install -e '.[bench]'``) PNG
    chart; returns the paths written."""
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md"}
    paths["json"].write_text(json.dumps(doc, indent=2, default=str) + "\n")
    paths["md"].write_text(markdown(doc))
    if chart_available():
        paths["png"] = out_dir / f"{stem}.png"
        chart(doc, paths["png"])
    return paths
