"""PH1.LEARN / PH1.FEEDBACK / PH1.KNOW (seed 000 row 25): feedback signals on the audit ledger, learning
artifacts and dictionary packs on the artifacts ledger (row 7). No table of their own.

- ``FEEDBACK_EVENT_COMMIT``: an audit row of PH1.FEEDBACK about one turn of a user on their device (PH1.F's
  reference guard checks user, device and session), severity INFO; dedupe (tenant, correlation, key).
- ``LEARN_ARTIFACT_COMMIT``: an artifact of a ``TENANT`` or ``USER`` scope (``DEVICE`` is out of scope), any
  type, built by PH1.LEARN; a ``USER`` scope names a user of the event's tenant (``consumers.projections``).
- ``KNOW_DICTIONARY_PACK_COMMIT``: the tenant's STT vocabulary or TTS pronunciation pack, always ACTIVE.

Row 7's rules hold for both kinds of artifact: one row per (scope, type, version), a ``TENANT`` scope is the
event's tenant. Each commit carries an idempotency key, as upstream requires.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from contracts.artifacts_ledger import ARTIFACTS_LEDGER, ArtifactEventInput
from contracts.audit import AUDIT_EVENTS
from contracts.audit_decisions import EngineDecision, Info, Text32, Text64
from contracts.envelope import Ident, LedgerEvent, define_event, new_event
from contracts.slice import ExampleContext, SliceContract

FEEDBACK, LEARN, KNOW = "PH1.FEEDBACK", "PH1.LEARN", "PH1.KNOW"


class _Keyed(LedgerEvent):
    idempotency_key: Ident


class FeedbackEnvelope(_Keyed):
    engine_id: Literal["PH1.FEEDBACK"]
    turn_id: Ident


class LearnEnvelope(_Keyed):
    engine_id: Literal["PH1.LEARN"]


class KnowEnvelope(_Keyed):
    engine_id: Literal["PH1.KNOW"]


class FeedbackEventCommit(EngineDecision):
    feedback_event_type: Text64
    signal_bucket: Text32
    severity: Info = "INFO"


class LearnArtifactCommit(ArtifactEventInput):
    scope_type: Literal["TENANT", "USER"]
    created_by: Literal["PH1.LEARN"] = "PH1.LEARN"


class KnowDictionaryPackCommit(ArtifactEventInput):
    scope_type: Literal["TENANT"] = "TENANT"
    artifact_type: Literal["STT_VOCAB_PACK", "TTS_PRONUNCIATION_PACK"]
    status: Literal["ACTIVE"] = "ACTIVE"
    created_by: Literal["PH1.KNOW"] = "PH1.KNOW"


FeedbackEvent = define_event(AUDIT_EVENTS, "FEEDBACK_EVENT_COMMIT", FeedbackEventCommit, base=FeedbackEnvelope)
LearnArtifactEvent = define_event(ARTIFACTS_LEDGER, "LEARN_ARTIFACT_COMMIT", LearnArtifactCommit, base=LearnEnvelope)
KnowPackEvent = define_event(
    ARTIFACTS_LEDGER, "KNOW_DICTIONARY_PACK_COMMIT", KnowDictionaryPackCommit, base=KnowEnvelope
)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """A user's feedback on a turn, a tenant adaptation profile learned from it, and a pronunciation pack."""
    # Tenant-scope versions: one per (user, n), so that every user's examples in one tenant stay apart.
    version = int(hashlib.sha256(ctx.user_id.encode()).hexdigest()[:5], 16) * 1000 + ctx.n % 1000 + 1
    common = {"tenant_id": ctx.tenant_id, "correlation_id": f"learn-{ctx.user_id}-{ctx.n}", "occurred_at": ctx.at}
    pack = {"scope_id": ctx.tenant_id, "artifact_version": version, "package_hash": f"sha256:{version}"}
    refs = {"user_id": ctx.user_id, "device_id": ctx.device_id, "session_id": ctx.session_id}
    return [
        new_event(
            FeedbackEvent,
            engine_id=FEEDBACK,
            turn_id="turn-1",
            idempotency_key="feedback-1",
            payload={"reason_code": "FEEDBACK_RECORDED", "feedback_event_type": "STT_CORRECTION", **refs}
            | {"signal_bucket": "NEGATIVE"},
            **common,
        ),
        new_event(
            LearnArtifactEvent,
            engine_id=LEARN,
            idempotency_key="learn-1",
            payload={**pack, "scope_type": "TENANT", "artifact_type": "STT_ADAPTATION_PROFILE", "status": "ACTIVE"}
            | {"payload_ref": f"artifacts://learn/{version}", "provenance_ref": f"feedback:{ctx.user_id}"},
            **common,
        ),
        new_event(
            KnowPackEvent,
            engine_id=KNOW,
            idempotency_key="know-1",
            payload={**pack, "artifact_type": "TTS_PRONUNCIATION_PACK", "payload_ref": f"artifacts://know/{version}"}
            | {"provenance_ref": "dictionary:tenant-names"},
            **common,
        ),
    ]


SLICE = SliceContract(
    name="learn_feedback_know",
    engines=(LEARN, FEEDBACK, KNOW),
    kind="audit_backed",
    seed_row=25,
    doc="docs/DB_WIRING/PH1_LEARN_FEEDBACK_KNOW.md",
    acceptance="AT-LEARN-DB",
    events=(FeedbackEvent, LearnArtifactEvent, KnowPackEvent),
    requires=("audit", "foundation", "artifacts_ledger"),
    examples=examples,
)
