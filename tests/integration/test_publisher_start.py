"""``Publisher.start`` against a broker that is down, and ``new_event``'s error type.

The broker address is a loopback port bound by this test but never listening: every connection is refused
at once, no service is needed, and no other process can take the port while the test holds it.
"""

from __future__ import annotations

import gc
import socket
import warnings
from collections.abc import Iterator

import pytest

from contracts.reasons import ReasonCode, RetriableError
from contracts.settings import Settings
from producers.publisher import Publisher

pytestmark = pytest.mark.integration


@pytest.fixture
def refused_address() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _unclosed_warnings() -> list[str]:
    """Collect garbage and return the "Unclosed AIOKafkaProducer" warnings its finalisers gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if "Unclosed AIOKafkaProducer" in str(w.message)]


async def test_start_that_fails_closes_its_producer(refused_address: str) -> None:
    publisher = Publisher(Settings(kafka_bootstrap_servers=refused_address, kafka_compression="none"))
    with pytest.raises(RetriableError) as info:
        await publisher.start()
    assert info.value.reason_code == ReasonCode.BROKER_UNAVAILABLE
    assert publisher._producer._closed is True
    del publisher
    assert _unclosed_warnings() == []


async def test_async_with_on_a_broker_that_is_down_leaves_nothing_open(refused_address: str) -> None:
    with pytest.raises(RetriableError):
        async with Publisher(Settings(kafka_bootstrap_servers=refused_address, kafka_compression="none")):
            pytest.fail("the block must not run without a broker")
    assert _unclosed_warnings() == []
