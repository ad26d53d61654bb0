"""PH1.F (identities, devices, sessions, the conversation ledger; seed 000 row 1): the shared acceptance
suite, AT-PH1-F-DB-01..04. The ownership rules of devices and sessions are in tests/e2e/test_pipeline.py
and tests/integration/test_projection_races.py."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.foundation import FoundationReader
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import (
    ConversationTurnEvent,
    DeviceRegisteredEvent,
    IdentityUpsertedEvent,
    SessionOpenedEvent,
)
from contracts.reasons import ContractViolation, ReasonCode
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e
TOMB = {"tombstone_of_conversation_turn_id": 1, "tombstone_reason_code": "R"}


class TestAtPh1FDb(SliceAcceptance):
    slice_name = "foundation"

    def sample(self, tenant: str, i: int) -> list[LedgerEvent]:
        user, device, session = (f"{kind}-{tenant}-{i}" for kind in ("u", "d", "s"))
        common: dict[str, Any] = {"tenant_id": tenant, "correlation_id": f"c-{user}", "occurred_at": datetime.now(UTC)}
        refs = {"user_id": user, "device_id": device}
        return [
            new_event(
                IdentityUpsertedEvent, engine_id="PH1.F", payload={"reason_code": "ID", "user_id": user}, **common
            ),
            new_event(
                DeviceRegisteredEvent,
                engine_id="PH1.F",
                payload={"reason_code": "DEV", "device_type": "PHONE", **refs},
                **common,
            ),
            new_event(
                SessionOpenedEvent,
                engine_id="PH1.L",
                payload={"reason_code": "SES", "session_id": session, **refs},
                **common,
            ),
            new_event(
                ConversationTurnEvent,
                engine_id="PH1.C",
                payload={"speaker": "USER", "source": "TEXT", "text": f"hello {i}", "session_id": session, **refs},
                **common,
            ),
        ]


def turn(tenant: str, turn_id: str | None, key: str | None, **payload: Any) -> LedgerEvent:
    return new_event(
        ConversationTurnEvent,
        tenant_id=tenant,
        engine_id="PH1.C",
        correlation_id="corr-1",
        turn_id=turn_id,
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={"speaker": "USER", "source": "TEXT", "text": "hello", **payload},
    )


async def test_turns_in_upstreams_shape_are_unique_per_correlation_and_redacted_by_tombstones(
    topics: Settings, writer_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """A turn with a text_hash owns its turn id in the correlation: the same turn again under another key
    is a duplicate, with other content a conflict. Turns without one (the original contract) may repeat
    a turn id, as before. A redaction is a TOMBSTONE row naming the turn; the turn stays."""
    t = f"t-{run_id}"
    first = turn(t, "turn-1", "k-1", text_hash="h:hello", privacy_scope="PRIVATE_DELIVERY")
    legacy = [turn(t, "turn-2", "k-2"), turn(t, "turn-2", "k-3", text="hello again")]
    await publish(topics, [first, *legacy])
    assert not (await drain(topics)).result.dead_lettered
    again = turn(t, "turn-1", "k-4", text_hash="h:hello", privacy_scope="PRIVATE_DELIVERY")
    other = turn(t, "turn-1", "k-5", text_hash="h:other", text="other")
    reader = FoundationReader(reader_db)
    [original] = await reader.turn(t, "corr-1", "turn-1")
    tombstone = turn(
        t,
        "turn-3",
        "k-6",
        speaker="SELENE",
        source="TOMBSTONE",
        text="[REDACTED]",
        tombstone_of_conversation_turn_id=original.conversation_turn_id,
        tombstone_reason_code="USER_ASKED_TO_FORGET",
    )
    await publish(topics, [again, other, tombstone])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({ReasonCode.IDEMPOTENCY_CONFLICT: 1})
    assert stats.result.deduplicated == 1
    assert (original.event_uuid, original.text_hash, original.privacy_scope) == (
        first.event_id,
        "h:hello",
        "PRIVATE_DELIVERY",
    )
    assert [r.event_uuid for r in await reader.turn(t, "corr-1", "turn-2")] == [e.event_id for e in legacy]
    [redaction] = await reader.turn(t, "corr-1", "turn-3")
    assert (redaction.source, redaction.text_body, redaction.text_hash, redaction.privacy_scope) == (
        "TOMBSTONE",
        "[REDACTED]",
        None,
        "PUBLIC_CHAT",
    )
    assert (redaction.tombstone_of_conversation_turn_id, redaction.tombstone_reason_code) == (
        original.conversation_turn_id,
        "USER_ASKED_TO_FORGET",
    )
    assert [r.text_body for r in await reader.turn(t, "corr-1", "turn-1")] == ["hello"]  # the original stays


@pytest.mark.parametrize(
    "payload",
    [
        {"source": "TOMBSTONE", "speaker": "SELENE", "text": "[REDACTED]", "tombstone_reason_code": "R"},
        {"source": "TOMBSTONE", "speaker": "USER", "text": "[REDACTED]", **TOMB},
        {"source": "TOMBSTONE", "speaker": "SELENE", "text": "gone", **TOMB},
        {"source": "TEXT", **TOMB},
        {"text_hash": "x" * 129},
        {"privacy_scope": "PUBLIC"},
    ],
)
def test_the_conversation_rules_refuse(payload: dict[str, Any]) -> None:
    with pytest.raises(ContractViolation) as info:
        turn("t", "turn-1", "k", **payload)
    assert info.value.reason_code == ReasonCode.EVENT_SCHEMA_INVALID


async def test_identities_and_devices_carry_upstreams_columns(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """speaker_id, primary_language, audio_profile_ref and last_seen_at land in the current tables; a device
    registered the original way was last seen when it was registered."""
    t = f"t-{run_id}"
    at = datetime(2026, 1, 2, tzinfo=UTC)
    seen = datetime(2026, 1, 3, tzinfo=UTC)
    common: dict[str, Any] = {"tenant_id": t, "correlation_id": "onboard", "occurred_at": at, "engine_id": "PH1.F"}
    user = {"reason_code": "ID", "user_id": "u-1"}
    await publish(
        topics,
        [
            new_event(
                IdentityUpsertedEvent, payload={**user, "speaker_id": "spk-1", "primary_language": "fr-CA"}, **common
            ),
            new_event(DeviceRegisteredEvent, payload={**user, "device_id": "d-1", "device_type": "PHONE"}, **common),
            new_event(
                DeviceRegisteredEvent,
                payload={
                    **user,
                    "device_id": "d-2",
                    "device_type": "SPEAKER",
                    "audio_profile_ref": "ap-7",
                    "last_seen_at": seen,
                },
                **common,
            ),
        ],
    )
    assert not (await drain(topics)).result.dead_lettered
    reader = FoundationReader(reader_db)
    identity = await reader.identity(t, "u-1")
    assert identity is not None and (identity.speaker_id, identity.primary_language) == ("spk-1", "fr-CA")
    devices = await reader.devices(t, "u-1")
    assert [(d.device_id, d.audio_profile_ref, d.last_seen_at) for d in devices] == [
        ("d-1", None, at),
        ("d-2", "ap-7", seen),
    ]
    assert await rebuild_equals_live(topics, [t]) == []
