"""Reads of PH1.LINK: a link (its token), a draft, a draft's links and a link's delivery proofs. Tenant-scoped,
see ``consumers.repositories``: another tenant's link is "not found"."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class LinkToken:
    """A row of ``onboarding_link_tokens`` (``token_id`` is the link id)."""

    tenant_id: str
    token_id: str
    draft_id: str
    token_signature: str
    expires_at: datetime
    status: str
    bound_device_fingerprint_hash: str | None
    created_at: datetime
    updated_at: datetime
    consumed_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class OnboardingDraft:
    """A row of ``onboarding_drafts``."""

    tenant_id: str
    draft_id: str
    invitee_type: str
    schema_version_id: str | None
    creator_user_id: str
    draft_payload_json: dict[str, Any]
    missing_required_fields_json: dict[str, str]
    status: str
    created_at: datetime
    updated_at: datetime
    committed_entity_id: str | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class DeliveryProof:
    """A row of the ``link_delivery_proofs`` ledger."""

    proof_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    delivery_proof_ref: str
    link_id: str
    delivery_method: str
    recipient_contact_hash: str
    delivery_status: str
    idempotency_key: str | None
    occurred_at: datetime


def _columns(record: type) -> str:
    return ", ".join(f.name for f in fields(record))


SELECT_TOKEN = (
    f"SELECT {_columns(LinkToken)} FROM os_core.onboarding_link_tokens WHERE tenant_id = $1 AND token_id = $2"
)
SELECT_DRAFT_TOKENS = f"""
SELECT {_columns(LinkToken)} FROM os_core.onboarding_link_tokens WHERE tenant_id = $1 AND draft_id = $2
ORDER BY created_at, token_id
"""
SELECT_DRAFT = (
    f"SELECT {_columns(OnboardingDraft)} FROM os_core.onboarding_drafts WHERE tenant_id = $1 AND draft_id = $2"
)
SELECT_PROOFS = f"""
SELECT {_columns(DeliveryProof)} FROM os_core.link_delivery_proofs
WHERE tenant_id = $1 AND link_id = $2 AND proof_id > $3 ORDER BY proof_id LIMIT $4
"""


class LinkReader:
    """Typed reads of one tenant's links, drafts and delivery proofs, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def link(self, tenant_id: str, link_id: str) -> LinkToken | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_TOKEN, tenant_id, link_id)
        return LinkToken(**dict(row)) if row is not None else None

    async def links_of_draft(self, tenant_id: str, draft_id: str) -> list[LinkToken]:
        """A draft's links, oldest first (a recovery adds one)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_DRAFT_TOKENS, tenant_id, draft_id)
        return [LinkToken(**dict(r)) for r in rows]

    async def draft(self, tenant_id: str, draft_id: str) -> OnboardingDraft | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_DRAFT, tenant_id, draft_id)
        return OnboardingDraft(**dict(row)) if row is not None else None

    async def proofs(
        self, tenant_id: str, link_id: str, *, after_proof_id: int = 0, limit: int = 1000
    ) -> list[DeliveryProof]:
        """The link's delivery proofs in append order, a page after ``after_proof_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_PROOFS, tenant_id, link_id, after_proof_id, limit)
        return [DeliveryProof(**dict(r)) for r in rows]
