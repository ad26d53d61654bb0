"""SELENE_KAFKA_COMPRESSION: read, checked at start-up, and handed to the producer."""

from __future__ import annotations

import pytest

from contracts.settings import KAFKA_CODECS, Settings
from producers.publisher import Publisher


def test_default_is_lz4_and_every_codec_is_accepted() -> None:
    assert Settings.from_env({}).kafka_compression == "lz4"
    for codec in KAFKA_CODECS:
        assert Settings.from_env({"SELENE_KAFKA_COMPRESSION": codec.upper()}).kafka_compression == codec


def test_an_unknown_codec_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="SELENE_KAFKA_COMPRESSION"):
        Settings.from_env({"SELENE_KAFKA_COMPRESSION": "brotli"})


@pytest.mark.parametrize("codec", KAFKA_CODECS)
async def test_the_publisher_compresses_with_the_setting(codec: str) -> None:
    publisher = Publisher(Settings(kafka_compression=codec))  # not started: nothing is sent
    try:
        expected = None if codec == "none" else codec
        assert publisher._producer._compression_type == expected  # aiokafka keeps the codec it was given
    finally:
        await publisher._producer.stop()
