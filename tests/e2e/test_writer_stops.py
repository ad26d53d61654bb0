"""What stops the writer rather than leave it running while it writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import asyncpg
import pytest

from consumers.offsets import Claim, TopicPartition
from consumers.writer import LedgerWriter
from contracts.settings import Settings

pytestmark = pytest.mark.e2e


class ClaimRefused(Exception):
    pass


async def test_a_failed_claim_stops_the_writer(topics: Settings) -> None:
    """aiokafka logs and swallows what a rebalance listener raises; the writer must not go on with
    partitions assigned to it and never written (here it would wait for ever: nothing is claimed)."""
    writer = LedgerWriter(topics)

    async def refuse(conn: asyncpg.Connection, parts: Iterable[TopicPartition]) -> dict[TopicPartition, Claim]:
        raise ClaimRefused("the offsets table refused the claim")

    writer.offsets.claim = refuse  # type: ignore[method-assign]
    with pytest.raises(ClaimRefused):
        await asyncio.wait_for(writer.run(until_caught_up=True), 60)
