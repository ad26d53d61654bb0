"""A CI-sized run of the benchmark harness (``python -m bench run --quick``): every mode but the peer and
growth on a tiny stream, in its own database. It checks that the harness produced well-formed results,
never how fast anything was: timings on a shared CI machine mean nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.env import BenchEnv, drop_database, postgres_facts
from bench.report import TARGETS, build, chart_available, write
from bench.runner import RunConfig, execute
from bench.stream import random_run_tag
from tests.fixtures.services import ServiceHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE_MODES = ("L0", "L1", "L2", "L3", "drain", "replay", "naive")
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms", "p99_9_ms")


def _positive_rate(result: dict[str, Any]) -> None:
    assert result["records"] > 0
    assert result["seconds"] > 0
    assert result["rate"] > 0
    assert result["peak_rss_mb"] > 0


async def test_quick_run_writes_well_formed_results(services: ServiceHandle, tmp_path: Any) -> None:
    if services.settings.database_admin_url is None:
        pytest.skip("the harness needs an admin URL to create its own database")
    env = BenchEnv(services.settings, random_run_tag(), database="selene_bench_ci")
    config = RunConfig.quick_config(events=300)
    try:
        run = await execute(config, env, log=lambda _: None)
        doc = build(run, await postgres_facts(env))
    finally:
        await drop_database(env)
    paths = write(doc, tmp_path, stem="smoke")

    assert run.errors == {}
    loaded = json.loads(paths["json"].read_text())
    assert set(loaded["modes"]) == set(config.modes)
    for mode in RATE_MODES:
        _positive_rate(loaded["modes"][mode])
    drain = loaded["modes"]["drain"]
    assert drain["records"] == loaded["workload"]["records"]
    assert drain["records"] == drain["appended"] + drain["deduplicated"] + sum(drain["dead_lettered"].values())
    assert loaded["modes"]["replay"]["unaccounted"] == 0
    # scale-out: every writer process of each group drained its share, together the whole stream once
    for n, scaled in loaded["modes"]["scale"]["writers"].items():
        assert len(scaled["per_writer"]) == int(n)
        assert scaled["records"] >= scaled["sent"] == drain["records"]  # a fenced batch is read again
        assert scaled["appended"] == drain["appended"] and scaled["rate"] > 0
    assert "Scale-out" in paths["md"].read_text()
    _positive_rate(loaded["modes"]["publisher"]["publisher"])
    _positive_rate(loaded["modes"]["publisher"]["raw"])
    levels = loaded["modes"]["latency"]["levels"]
    assert set(levels) == {"25%", "50%", "75%"}
    for level in levels.values():
        assert level["missing"] == 0
        assert level["samples"] > 0
        values = [level[p] for p in PERCENTILES]
        assert values == sorted(values)
    assert [r["name"] for r in loaded["ratios"]] == [t[0] for t in TARGETS]
    assert loaded["postgres"]["synchronous_commit"] == "on"

    text = paths["md"].read_text()
    assert "| mode | records |" in text
    assert "| ratio | measured | target | met |" in text
    if chart_available():  # the bench extra (matplotlib); tests/unit/test_bench_extra.py covers its absence
        assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
