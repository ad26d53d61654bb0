"""PH1.ONB end to end on real Kafka and PostgreSQL: the shared AT-ONB-DB-01..04, the sheet's readings of them,
and the preconditions' refusals through the writer."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.onb import OnbReader
from contracts.access import access_instance_id
from contracts.envelope import LedgerEvent, new_event
from contracts.link import LinkGenerateDraftEvent, LinkOpenActivateEvent
from contracts.onb import (
    OnbAccessInstanceEvent,
    OnbCompleteEvent,
    OnbEmployeePhotoEvent,
    OnbPrimaryDeviceEvent,
    OnbSenderVerifyEvent,
    OnbSessionStartEvent,
    OnbTermsAcceptEvent,
    onboarding_session_id,
)
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e
INVITEE = {"HOUSEHOLD": {}, "EMPLOYEE": {"schema_version_id": "employee_v1"}}


def ev(model: type[LedgerEvent], tenant: str, link: str, key: str | None = None, **payload: Any) -> LedgerEvent:
    ids: dict[str, Any] = {"draft_id": f"draft_{link}", "write_hash": f"w-{key}"}
    if model in (LinkGenerateDraftEvent, LinkOpenActivateEvent):
        ids["scope_id"], engine = link, "PH1.LINK"
    else:
        ids |= {"scope_id": onboarding_session_id(link), "link_id": link}
        engine = "PH1.ONB.CORE"
    return new_event(
        model,
        tenant_id=tenant,
        engine_id=engine,
        correlation_id=f"c-{link}",
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={**ids, **payload},
    )


def activated_link(tenant: str, link: str, invitee: str = "HOUSEHOLD", open_it: bool = True) -> list[LedgerEvent]:
    generate = ev(
        LinkGenerateDraftEvent,
        tenant,
        link,
        f"gen-{link}",
        invitee_type=invitee,
        inviter_user_id="u-alice",
        payload_hash="h",
        delivery_method="SMS",
        recipient_contact_hash="c",
        token_signature="s",
        **INVITEE[invitee],
    )
    return [
        generate,
        *([ev(LinkOpenActivateEvent, tenant, link, f"open-{link}", device_fingerprint_hash="fp")] * open_it),
    ]


def start(tenant: str, link: str, invitee: str = "HOUSEHOLD", key: str | None = None) -> LedgerEvent:
    return ev(OnbSessionStartEvent, tenant, link, key, invitee_type=invitee, device_fingerprint_hash="fp")


def flow(tenant: str, link: str, invitee: str) -> list[LedgerEvent]:
    employee = [
        ev(OnbEmployeePhotoEvent, tenant, link, photo_blob_ref="blob_1", sender_user_id="u-alice"),
        ev(OnbSenderVerifyEvent, tenant, link, sender_user_id="u-alice", decision="CONFIRMED"),
    ]
    return [
        start(tenant, link, invitee),
        ev(OnbTermsAcceptEvent, tenant, link, terms_version_id="terms_v1", accepted=True),
        *(employee if invitee == "EMPLOYEE" else []),
        ev(OnbPrimaryDeviceEvent, tenant, link, device_id="d-1", proof_type="BIOMETRIC", proof_ok=True),
        ev(OnbAccessInstanceEvent, tenant, link, user_id="u-bob", role_id="driver"),
        ev(OnbCompleteEvent, tenant, link),
    ]


async def test_at_onb_db_01_two_tenants_two_sessions_and_another_tenant_start_refused(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    await publish(topics, [*activated_link(a, "link_a"), *activated_link(b, "link_b")])
    await publish(topics, [start(a, "link_a"), start(b, "link_b"), start(b, "link_a")])  # b has no link_a
    assert (await drain(topics)).result.dead_lettered == Counter({ReasonCode.ONB_REFUSE_NOT_FOUND: 1})
    reader = OnbReader(reader_db)
    sessions = [await reader.session_of_link(a, "link_a"), await reader.session_of_link(b, "link_b")]
    assert [(s.tenant_id, s.status) for s in sessions if s] == [(a, "DRAFT_CREATED"), (b, "DRAFT_CREATED")]
    assert await reader.session(b, onboarding_session_id("link_a")) is None


async def test_at_onb_db_03_repeated_terms_and_device_commits_keep_the_first_result(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t = f"t-{run_id}"
    terms = ev(OnbTermsAcceptEvent, t, "link_1", "terms", terms_version_id="terms_v1", accepted=True)
    device = ev(OnbPrimaryDeviceEvent, t, "link_1", "dev", device_id="d-1", proof_type="PASSCODE", proof_ok=True)
    retries = [new_event(type(e), **e.model_dump(exclude={"event_id"})) for e in (terms, device)]
    declined = ev(OnbTermsAcceptEvent, t, "link_1", "terms", terms_version_id="terms_v1", accepted=False)
    await publish(topics, [*activated_link(t, "link_1"), start(t, "link_1"), terms, retries[0], device, retries[1]])
    await publish(topics, [declined])  # same key, other content: the first result stands
    stats = await drain(topics)
    assert stats.result.deduplicated == 2
    assert stats.result.dead_lettered == Counter({ReasonCode.IDEMPOTENCY_CONFLICT: 1})
    session = await OnbReader(reader_db).session_of_link(t, "link_1")
    assert session is not None
    assert (session.status, session.terms_status, session.primary_device_confirmed) == (
        "PRIMARY_DEVICE_CONFIRMED",
        "ACCEPTED",
        True,
    )


@pytest.mark.parametrize("invitee", ["HOUSEHOLD", "EMPLOYEE"])
async def test_at_onb_db_04_full_flow_to_complete_one_session_row(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str, invitee: str
) -> None:
    t = f"t-{run_id}"
    commits = flow(t, "link_1", invitee)
    await publish(topics, [*activated_link(t, "link_1", invitee), *commits])
    assert not (await drain(topics)).result.dead_lettered
    reader = OnbReader(reader_db)
    session = await reader.session_of_link(t, "link_1")
    assert session is not None and session.status == "COMPLETE"
    assert session.access_engine_instance_id == access_instance_id(t, "u-bob")
    assert [(x.commit, x.state_to) for x in await reader.transitions(t, session.onboarding_session_id)] == [
        (e.event_type, s) for e, s in zip(commits, expected_states(invitee), strict=True)
    ]
    rows = await operator_db.fetchval("SELECT count(*) FROM os_core.onboarding_sessions WHERE tenant_id = $1", t)
    assert rows == 1
    assert await rebuild_equals_live(topics, [t]) == []


def expected_states(invitee: str) -> list[str]:
    employee = ["VERIFICATION_PENDING", "VERIFICATION_CONFIRMED"] if invitee == "EMPLOYEE" else []
    return [
        "DRAFT_CREATED",
        "TERMS_ACCEPTED",
        *employee,
        "PRIMARY_DEVICE_CONFIRMED",
        "ACCESS_INSTANCE_CREATED",
        "COMPLETE",
    ]


async def test_refused_commits_are_dead_lettered_and_never_appended(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t = f"t-{run_id}"
    await publish(topics, [*activated_link(t, "link_sent", open_it=False), *activated_link(t, "link_1", "EMPLOYEE")])
    refused = [
        start(t, "link_sent"),  # the link is not activated
        start(t, "link_1", "HOUSEHOLD"),  # the link invites an employee
        start(t, "link_1", "EMPLOYEE"),
        ev(OnbPrimaryDeviceEvent, t, "link_1", device_id="d-1", proof_type="PASSCODE", proof_ok=True),  # no terms
        ev(OnbTermsAcceptEvent, t, "link_1", terms_version_id="terms_v1", accepted=True),
        ev(OnbSenderVerifyEvent, t, "link_1", sender_user_id="u-alice", decision="CONFIRMED"),  # nothing pending
        ev(OnbPrimaryDeviceEvent, t, "link_1", device_id="d-1", proof_type="PASSCODE", proof_ok=False),
        ev(OnbAccessInstanceEvent, t, "link_1", user_id="u", role_id="r"),  # not verified
        ev(OnbCompleteEvent, t, "link_9"),  # no such session: blocks the draft's later events
    ]
    held = ev(OnbCompleteEvent, t, "link_9")
    await publish(topics, [*refused, held])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {
            ReasonCode.ONB_REFUSE_INVALID: 5,
            ReasonCode.ONB_REFUSE_NOT_FOUND: 1,
            ReasonCode.HELD_BEHIND_DEAD_LETTER: 1,
        }
    )
    session = await OnbReader(reader_db).session_of_link(t, "link_1")
    assert session is not None
    assert (session.status, session.primary_device_confirmed) == ("TERMS_ACCEPTED", False)
    assert await OnbReader(reader_db).session_of_link(t, "link_sent") is None
    assert await rebuild_equals_live(topics, [t]) == []


class TestAtOnbDb(SliceAcceptance):
    """The shared AT-ONB-DB-01..04 (tests/e2e/acceptance.py); the tests above are what is special to it."""

    slice_name = "onb"
