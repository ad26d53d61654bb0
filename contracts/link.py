"""PH1.LINK (seed 000 row 20): invite links, their onboarding drafts and tokens, and delivery proofs.

Upstream describes the slice twice: SQL tables (``onboarding_drafts``, ``onboarding_link_tokens``, the
append-only ``onboarding_draft_write_dedupe``) and an in-memory runtime (a ``links`` map and a
``link_delivery_proofs`` ledger) that its tests exercise. Here the SQL tables are the storage and the runtime's
rules their behaviour: a link is a token (``token_id`` = link id) of a draft; every LINK commit is a row of the
write-dedupe ledger (scope ``LINK``, the link; its unique scope is the commit's dedupe), whose projection is the
drafts and tokens; a send (or a delivery retry) also appends its proof to ``link_delivery_proofs``, derived by
the writer in the same transaction, so the proof and the token's status can never disagree.

Aggregate = the draft: a link, the link a recovery issues for it, and (PH1.ONB, same ledger, scope ``ONB``)
the onboarding session of its link are decided in one order on one partition.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from contracts.envelope import (
    Ident,
    LedgerEvent,
    LedgerSpec,
    Payload,
    ReasonText,
    ShortText,
    define_event,
    new_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

WRITE_DEDUPE = LedgerSpec(
    name="onboarding_draft_write_dedupe",
    table="os_core.onboarding_draft_write_dedupe",
    id_column="dedupe_id",
    idempotency_scope=("tenant_id", "scope_type", "scope_id", "idempotency_key"),
    contract_invalid=ReasonCode.LINK_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.LINK_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.LINK_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.LINK_APPEND_ONLY_VIOLATION,
)
DELIVERY_PROOFS = LedgerSpec(
    name="link_delivery_proofs",
    table="os_core.link_delivery_proofs",
    id_column="proof_id",
    idempotency_scope=("tenant_id", "link_id", "delivery_method", "recipient_contact_hash", "idempotency_key"),
    contract_invalid=ReasonCode.LINK_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.LINK_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.LINK_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.LINK_APPEND_ONLY_VIOLATION,
)
ENGINE_ID = "PH1.LINK"
#: Upstream: a link expires 7 days after it is created.
LINK_TTL_DAYS = 7
MAX_DELIVERY_ATTEMPTS = 3

InviteeType = Literal["HOUSEHOLD", "EMPLOYEE", "CONTRACTOR", "REFERRAL"]
DeliveryMethod = Literal["SMS", "EMAIL", "WHATSAPP", "WECHAT", "QR", "COPY_LINK"]
TokenStatus = Literal["DRAFT_CREATED", "SENT", "OPENED", "ACTIVATED", "CONSUMED", "REVOKED", "EXPIRED", "BLOCKED"]


class DraftWrite(Payload):
    """A row of ``onboarding_draft_write_dedupe`` (its ``created_at`` is ``occurred_at``): the scope written
    (``LINK``: a link; ``ONB``: an onboarding session), the draft it belongs to (the aggregate; payload only) and
    the writing engine's hash of its write."""

    scope_type: Literal["LINK", "ONB"]
    scope_id: Ident
    draft_id: Ident
    write_hash: Ident

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"draft:{self.draft_id}"


class LinkWrite(DraftWrite):
    """A LINK commit on one link: ``scope_id`` is the link (token) id."""

    scope_type: Literal["LINK"] = "LINK"
    reason_code: ReasonText


#: Upstream's ``prefilled_context``: ids and references only (``jurisdiction_tags`` comma-separated). A map,
#: not a nested model or list: those leave the publisher's fast path.
PrefilledKey = Literal[
    "tenant_id",
    "company_id",
    "position_id",
    "location_id",
    "start_date",
    "working_hours",
    "compensation_tier_ref",
    "jurisdiction_tags",
]


class LinkGenerateDraft(LinkWrite):
    """LINK_INVITE_GENERATE_DRAFT: a draft and its first link (``DRAFT_CREATED``, expiring in 7 days)."""

    # The validator below, for other languages' validators (contracts.schema_export exports it).
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"invitee_type": {"const": "EMPLOYEE"}}, "required": ["invitee_type"]},
            "then": {"required": ["schema_version_id"], "properties": {"schema_version_id": {"type": "string"}}},
        }
    )

    reason_code: ReasonText = "LINK_OK_GENERATE_DRAFT"
    invitee_type: InviteeType
    schema_version_id: Ident | None = None
    inviter_user_id: Ident
    payload_hash: Ident
    expiration_policy_id: Ident | None = None
    delivery_method: DeliveryMethod
    recipient_contact_hash: Ident
    token_signature: Ident
    prefilled_context: dict[PrefilledKey, Ident] | None = None
    #: required field -> what is missing about it (a map, not a list: lists leave the publisher's fast path).
    missing_required_fields: Annotated[dict[Ident, ShortText], Field(max_length=32)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _employee_has_schema(self) -> LinkGenerateDraft:
        if self.invitee_type == "EMPLOYEE" and self.schema_version_id is None:
            raise ValueError("an EMPLOYEE draft names its schema_version_id")
        return self


class LinkDelivery(LinkWrite):
    """A delivery of the link; the writer appends its proof (``link_delivery_proofs``)."""

    delivery_method: DeliveryMethod
    recipient_contact_hash: Ident

    @property
    def status(self) -> str:
        """The proof's delivery status."""
        return "SENT"


class LinkSendCommit(LinkDelivery):
    """LINK_INVITE_SEND_COMMIT: proof ``SENT``; the link is ``SENT`` (refused once expired or revoked)."""

    reason_code: ReasonText = "LINK_OK_SEND_COMMIT"


class LinkDeliveryFailureHandling(LinkDelivery):
    """LINK_DELIVERY_FAILURE_HANDLING_COMMIT: a retry; proof ``SENT`` up to attempt 3, ``FAIL`` after."""

    reason_code: ReasonText = "LINK_OK_DELIVERY_FAILURE_HANDLING_COMMIT"
    attempt: Annotated[int, Field(ge=1, le=1000)]

    @property
    def status(self) -> str:
        return "SENT" if self.attempt <= MAX_DELIVERY_ATTEMPTS else "FAIL"


class LinkOpenActivate(LinkWrite):
    """LINK_INVITE_OPEN_ACTIVATE_COMMIT: opened on a device (its fingerprint's hash)."""

    reason_code: ReasonText = "LINK_OK_OPEN_ACTIVATE"
    device_fingerprint_hash: Ident


class LinkRevoke(LinkWrite):
    """LINK_INVITE_REVOKE_REVOKE: the link and its draft are revoked, with a reason."""

    reason_code: ReasonText = "LINK_OK_REVOKE"
    revoked_reason: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


class LinkExpiredRecovery(LinkWrite):
    """LINK_INVITE_EXPIRED_RECOVERY_COMMIT: an expired link (``scope_id``) gets a new link of the same draft."""

    reason_code: ReasonText = "LINK_OK_EXPIRED_RECOVERY_COMMIT"
    new_link_id: Ident
    token_signature: Ident


class LinkForwardBlock(LinkWrite):
    """LINK_INVITE_FORWARD_BLOCK_COMMIT: the bound link presented on another device is ``BLOCKED``."""

    reason_code: ReasonText = "LINK_OK_FORWARD_BLOCK_COMMIT"
    presented_fingerprint_hash: Ident


class DeliveryProof(Payload):
    """A row of ``link_delivery_proofs``, derived from a delivery (its ``created_at`` is ``occurred_at``)."""

    delivery_proof_ref: Ident
    link_id: Ident
    delivery_method: DeliveryMethod
    recipient_contact_hash: Ident
    delivery_status: Literal["QUEUED", "SENT", "FAIL"]
    draft_id: Ident

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"draft:{self.draft_id}"


LinkGenerateDraftEvent = define_event(WRITE_DEDUPE, "LINK_INVITE_GENERATE_DRAFT", LinkGenerateDraft)
LinkSendCommitEvent = define_event(WRITE_DEDUPE, "LINK_INVITE_SEND_COMMIT", LinkSendCommit)
LinkDeliveryFailureHandlingEvent = define_event(
    WRITE_DEDUPE, "LINK_DELIVERY_FAILURE_HANDLING_COMMIT", LinkDeliveryFailureHandling
)
LinkOpenActivateEvent = define_event(WRITE_DEDUPE, "LINK_INVITE_OPEN_ACTIVATE_COMMIT", LinkOpenActivate)
LinkRevokeEvent = define_event(WRITE_DEDUPE, "LINK_INVITE_REVOKE_REVOKE", LinkRevoke)
LinkExpiredRecoveryEvent = define_event(WRITE_DEDUPE, "LINK_INVITE_EXPIRED_RECOVERY_COMMIT", LinkExpiredRecovery)
LinkForwardBlockEvent = define_event(WRITE_DEDUPE, "LINK_INVITE_FORWARD_BLOCK_COMMIT", LinkForwardBlock)
DeliveryProofEvent = define_event(DELIVERY_PROOFS, "LINK_DELIVERY_PROOF_RECORDED", DeliveryProof)


def delivery_proof(event: LedgerEvent, event_id: uuid.UUID) -> LedgerEvent:
    """The proof a delivery commit appends: same tenant, correlation, key and time; ``event_id`` derived from
    the commit's (the writer derives it, so a commit delivered again derives the same proof), and the proof's
    reference from that id (upstream's runtime names its proofs itself)."""
    p = event.payload
    assert isinstance(p, LinkDelivery)
    return new_event(
        DeliveryProofEvent,
        **event.model_dump(include={"tenant_id", "engine_id", "correlation_id", "turn_id", "idempotency_key"}),
        event_id=event_id,
        occurred_at=event.occurred_at,
        payload={
            "delivery_proof_ref": f"proof_{event_id.hex}",
            "link_id": p.scope_id,
            "delivery_method": p.delivery_method,
            "recipient_contact_hash": p.recipient_contact_hash,
            "delivery_status": p.status,
            "draft_id": p.draft_id,
        },
    )


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """The user invites an employee: a draft and its link, sent by SMS, then opened on the invitee's phone."""
    draft, link = f"draft_{ctx.user_id}_{ctx.n}", f"link_{ctx.user_id}_{ctx.n}"
    common = {"tenant_id": ctx.tenant_id, "engine_id": ENGINE_ID, "correlation_id": f"link-{ctx.user_id}-{ctx.n}"}
    ids = {"scope_id": link, "draft_id": draft}
    contact = {"delivery_method": "SMS", "recipient_contact_hash": f"contact_{ctx.n}"}
    commits: list[tuple[type[LedgerEvent], dict[str, Any]]] = [
        (
            LinkGenerateDraftEvent,
            {
                "invitee_type": "EMPLOYEE",
                "schema_version_id": "employee_v1",
                "inviter_user_id": ctx.user_id,
                "payload_hash": f"payload_{ctx.n}",
                "token_signature": f"sig_{link}",
                "prefilled_context": {"tenant_id": ctx.tenant_id, "company_id": f"company_{ctx.user_id}_{ctx.n}"},
                **contact,
            },
        ),
        (LinkSendCommitEvent, contact),
        (LinkOpenActivateEvent, {"device_fingerprint_hash": f"fp_{ctx.device_id}"}),
    ]
    return [
        new_event(
            model,
            **common,
            # A generate's key is the tenant's (one draft per key), so each user's examples take their own.
            idempotency_key=f"{model.event_type_name.lower()}-{ctx.user_id}-{ctx.n}",
            occurred_at=ctx.at,
            payload={**ids, "write_hash": f"write_{i}_{ctx.n}", **payload},
        )
        for i, (model, payload) in enumerate(commits)
    ]


SLICE = SliceContract(
    name="link",
    engines=(ENGINE_ID,),
    kind="custom",
    seed_row=20,
    doc="docs/DB_WIRING/PH1_LINK.md",
    acceptance="AT-LINK-DB",
    ledgers=(
        LedgerColumns(WRITE_DEDUPE, DraftWrite, exclude=("draft_id",)),
        LedgerColumns(DELIVERY_PROOFS, DeliveryProof, exclude=("draft_id",)),
    ),
    events=(
        LinkGenerateDraftEvent,
        LinkSendCommitEvent,
        LinkDeliveryFailureHandlingEvent,
        LinkOpenActivateEvent,
        LinkRevokeEvent,
        LinkExpiredRecoveryEvent,
        LinkForwardBlockEvent,
        DeliveryProofEvent,
    ),
    reasons=(
        ReasonCode.LINK_REFUSE_INVALID,
        ReasonCode.LINK_REFUSE_NOT_FOUND,
    ),
    # A duplicate changes nothing; a commit the link's state refuses (a send after revocation, a second
    # activation on a blocked link) leaves the link as it was, and each later commit is decided on that. A
    # link never generated means its draft's stream lost an event: its later events wait behind the dead letter.
    non_blocking=frozenset({ReasonCode.LINK_REFUSE_INVALID}),
    examples=examples,
)
