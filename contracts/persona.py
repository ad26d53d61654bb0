"""PH1.PERSONA (seed 004): per-user personalization decisions, recorded on the audit ledger.

A ``PERSONA_PROFILE_COMMIT`` is an audit row of engine ``PH1.PERSONA`` whose payload is exactly the three
profile references plus the audit columns (reason code, user, device, optional session). PH1.PERSONA owns
no table: the ledger rows are the decision trace, read back by correlation id.

The seed's ``event_type=Other`` is the closed audit-type enum of the seeds' implementation, which had no
persona variant; here the event type selects the payload model, so the row's ``event_type`` is
``PERSONA_PROFILE_COMMIT`` (a refinement of "Other", see docs/DB_WIRING/PH1_PERSONA.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.envelope import Ident, LedgerEvent, define_event, new_event
from contracts.slice import ExampleContext, SliceContract

PERSONA_ENGINE = "PH1.PERSONA"
PERSONA_PROFILE_COMMIT = "PERSONA_PROFILE_COMMIT"

# A reference to a profile artifact stored elsewhere (never the profile itself): bounded and printable.
ProfileRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$")]


class PersonaEvent(LedgerEvent):
    """The envelope of PH1.PERSONA events: published by PH1.PERSONA only, and always about one turn."""

    engine_id: Literal["PH1.PERSONA"]
    turn_id: Ident


class PersonaProfileCommit(AuditPayload):
    """The profile a user's turn is delivered with. The user and device are required (the seed's write
    path), the session optional; extra keys are refused, so the payload stays exactly these fields."""

    user_id: Ident
    device_id: Ident
    style_profile_ref: ProfileRef
    delivery_policy_ref: ProfileRef
    preferences_snapshot_ref: ProfileRef


PersonaProfileCommitEvent = define_event(AUDIT_EVENTS, PERSONA_PROFILE_COMMIT, PersonaProfileCommit, base=PersonaEvent)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """The profile one turn of the user is delivered with."""
    return [
        new_event(
            PersonaProfileCommitEvent,
            tenant_id=ctx.tenant_id,
            engine_id=PERSONA_ENGINE,
            correlation_id=f"persona-{ctx.user_id}-{ctx.n}",
            turn_id=f"turn-{ctx.n}",
            occurred_at=ctx.at,
            payload={
                "reason_code": "PERSONA_PROFILE_SELECTED",
                "user_id": ctx.user_id,
                "device_id": ctx.device_id,
                "session_id": ctx.session_id,
                "style_profile_ref": "style:warm/v3",
                "delivery_policy_ref": "delivery:voice-first",
                "preferences_snapshot_ref": f"prefs:{ctx.user_id}@{ctx.n}",
            },
        )
    ]


SLICE = SliceContract(
    name="persona",
    engines=(PERSONA_ENGINE,),
    kind="audit_backed",
    seed_row=24,
    acceptance="AT-PERS-DB",
    events=(PersonaProfileCommitEvent,),
    requires=("audit",),
    examples=examples,
)
