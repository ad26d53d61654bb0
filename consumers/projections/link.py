"""PH1.LINK: ``onboarding_drafts`` and ``onboarding_link_tokens`` from the LINK rows of the write-dedupe
ledger, with upstream's runtime rules enforced, and each delivery's proof appended to ``link_delivery_proofs``.

A link is a token of a draft (``token_id`` = link id). Decided on the rows as the draft's earlier commits left
them (``decide``): a generate needs a new link and draft; any other commit needs its link (else
``LINK_REFUSE_NOT_FOUND``) of the draft it names; a state the rule does not allow is ``LINK_REFUSE_INVALID``.
Opening a link past its expiry is applied (the link becomes ``EXPIRED``, upstream's outcome), not refused. A
refused commit is not appended, so a rebuild replaying the ledger applies every row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from consumers.projections.base import Projection, Rejection, RowRef, RowView, derived_event_id
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent
from contracts.link import (
    LINK_TTL_DAYS,
    WRITE_DEDUPE,
    LinkDelivery,
    LinkExpiredRecovery,
    LinkForwardBlock,
    LinkGenerateDraft,
    LinkOpenActivate,
    LinkRevoke,
    LinkWrite,
    delivery_proof,
)
from contracts.reasons import ReasonCode

DRAFTS = TableSpec(
    "os_core.onboarding_drafts",
    columns=(
        ("tenant_id", "text"),
        ("draft_id", "text"),
        ("invitee_type", "text"),
        ("schema_version_id", "text"),
        ("creator_user_id", "text"),
        ("draft_payload_json", "jsonb"),
        ("missing_required_fields_json", "jsonb"),
        ("status", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("committed_entity_id", "text"),
        ("idempotency_key", "text"),
    ),
    key=("tenant_id", "draft_id"),
)
TOKENS = TableSpec(
    "os_core.onboarding_link_tokens",
    columns=(
        ("tenant_id", "text"),
        ("token_id", "text"),
        ("draft_id", "text"),
        ("token_signature", "text"),
        ("expires_at", "timestamptz"),
        ("status", "text"),
        ("bound_device_fingerprint_hash", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("consumed_at", "timestamptz"),
        ("revoked_at", "timestamptz"),
    ),
    key=("tenant_id", "token_id"),
)
# Drafts by their generate's key, read to refuse a key another draft holds before its unique index would.
DRAFTS_BY_KEY = TableSpec(
    "os_core.onboarding_drafts",
    columns=(("tenant_id", "text"), ("idempotency_key", "text"), ("draft_id", "text")),
    key=("tenant_id", "idempotency_key"),
)
#: Statuses after which a link takes no send (upstream) and no activation.
CLOSED = frozenset({"EXPIRED", "REVOKED", "CONSUMED"})


def _link(event: LedgerEvent) -> LinkWrite:
    assert isinstance(event.payload, LinkWrite)
    return event.payload


def _token(event: LedgerEvent, token_id: str, draft_id: str, signature: str) -> Row:
    at = event.occurred_at
    return {
        "tenant_id": event.tenant_id,
        "token_id": token_id,
        "draft_id": draft_id,
        "token_signature": signature,
        "expires_at": at + timedelta(days=LINK_TTL_DAYS),
        "status": "DRAFT_CREATED",
        "bound_device_fingerprint_hash": None,
        "created_at": at,
        "updated_at": at,
        "consumed_at": None,
        "revoked_at": None,
    }


def _draft(event: LedgerEvent, p: LinkGenerateDraft) -> Row:
    at = event.occurred_at
    return {
        "tenant_id": event.tenant_id,
        "draft_id": p.draft_id,
        "invitee_type": p.invitee_type,
        "schema_version_id": p.schema_version_id,
        "creator_user_id": p.inviter_user_id,
        # The runtime link's fields that have no column of their own.
        "draft_payload_json": {
            "payload_hash": p.payload_hash,
            "expiration_policy_id": p.expiration_policy_id,
            "delivery_method": p.delivery_method,
            "recipient_contact_hash": p.recipient_contact_hash,
            "prefilled_context": p.prefilled_context,
        },
        "missing_required_fields_json": dict(p.missing_required_fields),
        "status": "DRAFT_CREATED" if p.missing_required_fields else "READY_TO_SEND",
        "created_at": at,
        "updated_at": at,
        "committed_entity_id": None,
        "idempotency_key": event.idempotency_key,
    }


def _refuse(p: LinkWrite, what: str) -> Rejection:
    return Rejection(ReasonCode.LINK_REFUSE_INVALID, f"link {p.scope_id}: {what}")


def decide(event: LedgerEvent, token: Row | None, draft: Row | None, new_token: Row | None = None) -> Row:
    """The link's token row after ``event`` (``token``: its row, ``draft``: its draft's, ``new_token``: a
    recovery's new link's), or ``Rejection``. A generate returns the new token (the caller adds the draft)."""
    p, at = _link(event), event.occurred_at
    if isinstance(p, LinkGenerateDraft):
        context_tenant = (p.prefilled_context or {}).get("tenant_id")
        inviter_tenant = p.inviter_user_id.split(":", 1)[0] if ":" in p.inviter_user_id else None
        if {context_tenant, inviter_tenant} - {None, event.tenant_id}:
            raise Rejection(
                ReasonCode.LINK_TENANT_SCOPE_VIOLATION,
                f"link {p.scope_id}: inviter {p.inviter_user_id} or prefilled tenant {context_tenant} is not "
                f"tenant {event.tenant_id}",
            )
        if token is not None or draft is not None:
            raise _refuse(p, f"exists already (draft {p.draft_id})")
        return _token(event, p.scope_id, p.draft_id, p.token_signature)
    if token is None or token["draft_id"] != p.draft_id:
        raise Rejection(ReasonCode.LINK_REFUSE_NOT_FOUND, f"no link {p.scope_id} of draft {p.draft_id}")
    status, bound = token["status"], token["bound_device_fingerprint_hash"]
    row = {**token, "updated_at": max(at, token["updated_at"])}
    if isinstance(p, LinkDelivery):
        if status in CLOSED:
            raise _refuse(p, f"is {status}: no delivery")
        return {**row, "status": "SENT"} if status == "DRAFT_CREATED" and p.status == "SENT" else row
    if isinstance(p, LinkOpenActivate):
        if status in CLOSED or status == "BLOCKED":
            raise _refuse(p, f"is {status}: cannot be opened")
        if at > token["expires_at"]:
            return {**row, "status": "EXPIRED"}
        if bound is not None and bound != p.device_fingerprint_hash:
            return {**row, "status": "BLOCKED"}
        return {**row, "status": "ACTIVATED", "bound_device_fingerprint_hash": p.device_fingerprint_hash}
    if isinstance(p, LinkForwardBlock):
        if bound is None or bound == p.presented_fingerprint_hash or status in CLOSED:
            raise _refuse(p, f"is {status}, bound to {bound}: nothing to block")
        return {**row, "status": "BLOCKED"}
    if isinstance(p, LinkRevoke):
        if status in ("REVOKED", "CONSUMED"):
            raise _refuse(p, f"is {status} already")
        return {**row, "status": "REVOKED", "revoked_at": at}
    assert isinstance(p, LinkExpiredRecovery)
    if status != "EXPIRED":
        raise _refuse(p, f"is {status}: only an EXPIRED link is recovered")
    if new_token is not None:
        raise _refuse(p, f"new link {p.new_link_id} exists already")
    return _token(event, p.new_link_id, p.draft_id, p.token_signature)


class LinkProjection(Projection):
    """onboarding_drafts, onboarding_link_tokens <- the LINK rows of onboarding_draft_write_dedupe."""

    name = "links"
    writes = (DRAFTS, TOKENS)
    indexes = (DRAFTS_BY_KEY,)
    ledgers = frozenset({WRITE_DEDUPE.name})
    event_ref_columns = ()

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, LinkWrite)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = _link(event)
        yield TOKENS, (event.tenant_id, p.scope_id)
        yield DRAFTS, (event.tenant_id, p.draft_id)
        if isinstance(p, LinkExpiredRecovery):
            yield TOKENS, (event.tenant_id, p.new_link_id)
        if isinstance(p, LinkGenerateDraft) and event.idempotency_key is not None:
            yield DRAFTS_BY_KEY, (event.tenant_id, event.idempotency_key)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p, tenant = _link(event), event.tenant_id
        token, draft = view.get(TOKENS, (tenant, p.scope_id)), view.get(DRAFTS, (tenant, p.draft_id))
        new = view.get(TOKENS, (tenant, p.new_link_id)) if isinstance(p, LinkExpiredRecovery) else None
        row = decide(event, token, draft, new)
        if isinstance(p, LinkGenerateDraft):
            key = event.idempotency_key
            if key is not None and (holder := view.get(DRAFTS_BY_KEY, (tenant, key))) is not None:
                raise _refuse(p, f"key {key} created draft {holder['draft_id']} already")
            view.put(DRAFTS, _draft(event, p))
            if key is not None:
                view.put(DRAFTS_BY_KEY, {"tenant_id": tenant, "idempotency_key": key, "draft_id": p.draft_id})
        elif isinstance(p, LinkRevoke):
            assert draft is not None
            view.put(DRAFTS, {**draft, "status": "REVOKED", "updated_at": max(event.occurred_at, draft["updated_at"])})
        view.put(TOKENS, row)


class DeliveryProofEmitter(Projection):
    """Every appended delivery gets its proof on ``link_delivery_proofs`` in the same transaction. Live only:
    a rebuild finds the proofs in their ledger. Runs after ``LinkProjection``, so only for accepted commits."""

    name = "link_delivery_proofs"
    ledgers = frozenset({WRITE_DEDUPE.name})
    live_only = True

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, LinkDelivery)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        return ()

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        view.emit(delivery_proof(event, derived_event_id(event, "link_delivery_proofs")))


PROJECTIONS: tuple[Projection, ...] = (LinkProjection(), DeliveryProofEmitter())
