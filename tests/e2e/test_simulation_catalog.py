"""Simulation catalog (seed 000 row 5) end to end on real Kafka and PostgreSQL: AT-SIMCAT-DB-01..04 from the
shared suite, which also runs, from the declaration, its typed repositories, its version rule
(``LatestPerKey``: ``test_latest_per_key``) and its contract's refusals (``test_contract_refusals``). Nothing
about the slice is left that its declaration does not state, so nothing else is here."""

from __future__ import annotations

import pytest

from tests.e2e.acceptance import SliceAcceptance

pytestmark = pytest.mark.e2e


class TestAtSimcatDb(SliceAcceptance):
    """The shared AT-SIMCAT-DB-01..04 and the ledger_current checks (tests/e2e/acceptance.py)."""

    slice_name = "simulation_catalog"
