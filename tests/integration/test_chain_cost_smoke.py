"""A CI-sized run of ``python -m bench.chain_cost``: both variants write rows and produce a rate, the "with"
database chains its rows and the "without" one does not. Never a ratio: timings on a shared CI machine mean
nothing, the figures come from the command."""

from __future__ import annotations

from typing import Any

import pytest

from bench.chain_cost import markdown, measure
from tests.fixtures.services import ServiceHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_chain_cost_measures_both_variants(services: ServiceHandle) -> None:
    if services.settings.database_admin_url is None:
        pytest.skip("the benchmark needs an admin URL to create its own databases")
    doc: dict[str, Any] = await measure(
        services.settings,
        events=500,
        passes=1,
        databases=("selene_bench_chain_ci", "selene_bench_chain_ci_off"),
        log=lambda _: None,
    )
    for side in ("with", "without"):
        assert doc[side]["events"] > 0
        assert doc[side]["appended"] > 0
        assert doc[side]["events_per_s"] > 0
    assert doc["with"]["chain_links_written"] > 0
    assert doc["without"]["chain_links_written"] == 0  # the "without" variant really skipped the chain
    assert "| with chain |" in markdown(doc)
