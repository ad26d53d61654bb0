"""PH1.LINK end to end on real Kafka and PostgreSQL: the shared AT-LINK-DB-01..04, the sheet's readings of them,
and the runtime rules' refusals and outcomes through the writer."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.repositories.link import LinkReader
from contracts.envelope import LedgerEvent, new_event
from contracts.link import (
    LinkDeliveryFailureHandlingEvent,
    LinkExpiredRecoveryEvent,
    LinkGenerateDraftEvent,
    LinkOpenActivateEvent,
    LinkRevokeEvent,
    LinkSendCommitEvent,
)
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e
SMS = {"delivery_method": "SMS", "recipient_contact_hash": "contact_1"}


def ev(model: type[LedgerEvent], tenant: str, link: str, key: str | None = None, **payload: Any) -> LedgerEvent:
    at = payload.pop("at", datetime.now(UTC))
    if model is LinkGenerateDraftEvent:
        payload = {"invitee_type": "HOUSEHOLD", "inviter_user_id": "u-alice", "payload_hash": "h1", **SMS, **payload}
        payload.setdefault("token_signature", f"sig_{link}")
    return new_event(
        model,
        tenant_id=tenant,
        engine_id="PH1.LINK",
        correlation_id=f"c-{link}",
        idempotency_key=key,
        occurred_at=at,
        payload={"scope_id": link, "draft_id": "draft_1", "write_hash": f"w-{key}", **payload},
    )


async def test_at_link_db_01_tenants_get_distinct_links_and_a_foreign_inviter_is_refused(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    foreign = ev(LinkGenerateDraftEvent, a, "link_2", inviter_user_id=f"{b}:u-bob", draft_id="draft_2")
    await publish(topics, [ev(LinkGenerateDraftEvent, a, "link_1"), ev(LinkGenerateDraftEvent, b, "link_1"), foreign])
    assert (await drain(topics)).result.dead_lettered == Counter({ReasonCode.LINK_TENANT_SCOPE_VIOLATION: 1})
    reader = LinkReader(reader_db)
    links = [await reader.link(t, "link_1") for t in (a, b)]
    assert [(x.tenant_id, x.status) for x in links if x] == [(a, "DRAFT_CREATED"), (b, "DRAFT_CREATED")]
    assert await reader.link(a, "link_2") is None


async def test_at_link_db_03_repeated_generate_and_send_land_once(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t = f"t-{run_id}"
    generate, send = ev(LinkGenerateDraftEvent, t, "link_1", "gen"), ev(LinkSendCommitEvent, t, "link_1", "send", **SMS)
    retries = [new_event(type(e), **e.model_dump(exclude={"event_id"})) for e in (generate, send)]
    await publish(topics, [generate, retries[0], send, send, retries[1]])
    stats = await drain(topics)
    assert (stats.result.deduplicated, stats.result.dead_lettered) == (3, Counter())
    reader = LinkReader(reader_db)
    assert [p.delivery_status for p in await reader.proofs(t, "link_1")] == ["SENT"]
    assert [x.token_id for x in await reader.links_of_draft(t, "draft_1")] == ["link_1"]


async def test_at_link_db_04_send_activate_then_another_device_blocks(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t = f"t-{run_id}"
    flow = [
        ev(LinkGenerateDraftEvent, t, "link_1", "gen"),
        ev(LinkSendCommitEvent, t, "link_1", "send", **SMS),
        ev(LinkOpenActivateEvent, t, "link_1", "open-1", device_fingerprint_hash="fp_1"),
        ev(LinkOpenActivateEvent, t, "link_1", "open-2", device_fingerprint_hash="fp_2"),
    ]
    await publish(topics, flow)
    assert not (await drain(topics)).result.dead_lettered
    reader = LinkReader(reader_db)
    link = await reader.link(t, "link_1")
    assert link is not None and (link.status, link.bound_device_fingerprint_hash) == ("BLOCKED", "fp_1")
    assert len(await reader.proofs(t, "link_1")) == 1
    draft = await reader.draft(t, "draft_1")
    assert draft is not None and (draft.status, draft.draft_payload_json["payload_hash"]) == ("READY_TO_SEND", "h1")
    assert await rebuild_equals_live(topics, [t]) == []


async def test_expiry_recovery_revocation_and_refusals(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t, old = f"t-{run_id}", datetime.now(UTC) - timedelta(days=8)
    applied = [
        ev(LinkGenerateDraftEvent, t, "link_1", at=old),
        ev(LinkOpenActivateEvent, t, "link_1", device_fingerprint_hash="fp_1"),  # past its 7 days: EXPIRED
        ev(LinkExpiredRecoveryEvent, t, "link_1", new_link_id="link_2", token_signature="sig_2"),
        ev(LinkDeliveryFailureHandlingEvent, t, "link_2", attempt=4, **SMS),  # proof FAIL, link unchanged
        ev(LinkRevokeEvent, t, "link_2", revoked_reason="invitee left"),
    ]
    refused = [
        ev(LinkSendCommitEvent, t, "link_1", **SMS),  # expired: no delivery
        ev(LinkSendCommitEvent, t, "link_2", **SMS),  # revoked: no delivery
        ev(LinkOpenActivateEvent, t, "link_9", device_fingerprint_hash="fp_1"),  # no such link
    ]
    held = ev(LinkRevokeEvent, t, "link_1", revoked_reason="late")  # behind the missing link's dead letter
    await publish(topics, [*applied, *refused, held])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {
            ReasonCode.LINK_REFUSE_INVALID: 2,
            ReasonCode.LINK_REFUSE_NOT_FOUND: 1,
            ReasonCode.HELD_BEHIND_DEAD_LETTER: 1,
        }
    )
    reader = LinkReader(reader_db)
    assert [(x.token_id, x.status) for x in await reader.links_of_draft(t, "draft_1")] == [
        ("link_1", "EXPIRED"),
        ("link_2", "REVOKED"),
    ]
    assert [p.delivery_status for p in await reader.proofs(t, "link_2")] == ["FAIL"]
    assert await reader.proofs(t, "link_1") == []
    draft = await reader.draft(t, "draft_1")
    assert draft is not None and draft.status == "REVOKED"
    assert await rebuild_equals_live(topics, [t]) == []


class TestAtLinkDb(SliceAcceptance):
    """The shared AT-LINK-DB-01..04 (tests/e2e/acceptance.py); the tests above are what is special to it."""

    slice_name = "link"
