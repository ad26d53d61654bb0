"""The readiness and liveness rules of the health endpoints (consumers/metrics.py), case by case."""

from __future__ import annotations

import pytest

from consumers.metrics import HealthBounds, WriterView, liveness, readiness

BOUNDS = HealthBounds(max_lag=100, commit_within_s=60, retrying_for_s=30, loop_within_s=10)
NOW = 1000.0
TP = ("selene.os_core.audit_events", 0)


def view(**changes: object) -> WriterView:
    base: dict[str, object] = {"running": True, "claimed": 3, "lag": {TP: 0}, "started": 0.0, "last_commit": 990.0}
    return WriterView(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "ready", "reason"),
    [
        ({}, True, "caught up: nothing to read"),
        ({"lag": {}}, True, "caught up"),  # nothing known to read yet
        ({"lag": {TP: 50}, "last_commit": 995.0}, True, "lag 50 records, last batch committed 5.0s ago"),
        ({"lag": {TP: 100}, "last_commit": 995.0}, True, "lag 100 records"),  # at the bound: still ready
        ({"lag": {TP: 101}, "last_commit": 999.0}, False, "lag 101 records above 100"),
        ({"lag": {TP: 60, ("t", 1): 60}}, False, "lag 120 records above 100 (most behind: "),
        ({"lag": {TP: 5}, "last_commit": 900.0}, False, "lag 5 records but no batch committed for 100s"),
        ({"lag": {TP: 5}, "last_commit": None, "started": 990.0}, True, "lag 5 records"),  # just started
        ({"lag": {TP: 5}, "last_commit": None, "started": 0.0}, False, "lag 5 records but no batch committed for 1000"),
        ({"retrying_since": 980.0, "retry_reason": "DATABASE_UNAVAILABLE"}, True, "caught up"),
        ({"retrying_since": 960.0, "retry_reason": "DATABASE_UNAVAILABLE"}, False, "retrying a batch for 40s"),
        ({"claimed": 0, "lag": {}}, False, "no partitions claimed"),
        ({"lag": {}, "unknown_lag": 3}, False, "lag of 3 claimed partitions not known yet"),  # just claimed
        ({"lag": {TP: 0}, "unknown_lag": 1}, False, "lag of 1 claimed partitions not known yet"),
        ({"running": False}, False, "the writer is not running"),
    ],
)
def test_readiness(changes: dict[str, object], ready: bool, reason: str) -> None:
    ok, why = readiness(view(**changes), NOW, BOUNDS)
    assert (ok, why.startswith(reason)) == (ready, True), why


def test_liveness() -> None:
    assert liveness(995.0, NOW, BOUNDS) == (True, "event loop turning")
    assert liveness(980.0, NOW, BOUNDS) == (False, "event loop has not turned for 20s")
