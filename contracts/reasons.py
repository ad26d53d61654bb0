"""Reason codes and the error hierarchy shared by the publisher, the writer and the repositories.

Every failure this project reports carries a reason code: the seeds' codes where the seeds name one
(``OS_WORK_ORDER_*``), and pipeline codes of the same style for what the seeds' world did not have (Kafka
input). A code also says how the writer treats the message: whether it blocks later events of the same
aggregate (they are held behind it, in order) and whether a retry could succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    """Why an event was refused, deduplicated or dead-lettered."""

    # Input that cannot be read as an event at all.
    EVENT_UNDECODABLE = "EVENT_UNDECODABLE"
    EVENT_OVERSIZE = "EVENT_OVERSIZE"
    EVENT_UNKNOWN_LEDGER = "EVENT_UNKNOWN_LEDGER"
    EVENT_UNKNOWN_TYPE = "EVENT_UNKNOWN_TYPE"
    EVENT_TENANT_MISSING = "EVENT_TENANT_MISSING"
    EVENT_TENANT_MISMATCH = "EVENT_TENANT_MISMATCH"
    EVENT_KEY_MISMATCH = "EVENT_KEY_MISMATCH"
    EVENT_WRONG_TOPIC = "EVENT_WRONG_TOPIC"
    EVENT_SCHEMA_INVALID = "EVENT_SCHEMA_INVALID"
    # Idempotency.
    IDEMPOTENCY_REPLAY = "IDEMPOTENCY_REPLAY"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    # Ordering.
    HELD_BEHIND_DEAD_LETTER = "HELD_BEHIND_DEAD_LETTER"
    # References to rows of other aggregates (identities, devices, sessions).
    REFERENCE_UNKNOWN = "REFERENCE_UNKNOWN"
    # Database guards.
    PH1_J_AUDIT_APPEND_ONLY_VIOLATION = "PH1_J_AUDIT_APPEND_ONLY_VIOLATION"
    PH1_F_CONVERSATION_APPEND_ONLY_VIOLATION = "PH1_F_CONVERSATION_APPEND_ONLY_VIOLATION"
    DEAD_LETTER_APPEND_ONLY_VIOLATION = "DEAD_LETTER_APPEND_ONLY_VIOLATION"
    TENANT_SCOPE_VIOLATION = "TENANT_SCOPE_VIOLATION"
    # PH1.L session lifecycle (docs/DB_WIRING/PH1_L.md).
    PH1_L_INVALID_TRANSITION = "PH1_L_INVALID_TRANSITION"
    PH1_L_IMMUTABLE_FIELD_CHANGED = "PH1_L_IMMUTABLE_FIELD_CHANGED"
    PH1_L_ACTIVITY_WENT_BACK = "PH1_L_ACTIVITY_WENT_BACK"
    # Seed 002 (Selene OS core work orders).
    OS_WORK_ORDER_APPEND_ONLY_VIOLATION = "OS_WORK_ORDER_APPEND_ONLY_VIOLATION"
    OS_WORK_ORDER_IDEMPOTENCY_REPLAY = "OS_WORK_ORDER_IDEMPOTENCY_REPLAY"
    OS_WORK_ORDER_TENANT_SCOPE_VIOLATION = "OS_WORK_ORDER_TENANT_SCOPE_VIOLATION"
    OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED = "OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED"
    OS_WORK_ORDER_CANCEL_INVALID_STATE = "OS_WORK_ORDER_CANCEL_INVALID_STATE"
    # Work-order rules the seeds state without naming a code (docs/DB_WIRING/SELENE_OS_CORE_TABLES.md).
    OS_WORK_ORDER_NOT_FOUND = "OS_WORK_ORDER_NOT_FOUND"
    OS_WORK_ORDER_INVALID_TRANSITION = "OS_WORK_ORDER_INVALID_TRANSITION"
    OS_WORK_ORDER_CORRELATION_CONFLICT = "OS_WORK_ORDER_CORRELATION_CONFLICT"
    OS_WORK_ORDER_TERMINAL_STATE = "OS_WORK_ORDER_TERMINAL_STATE"
    OS_WORK_ORDER_PROMPT_SUPPRESSED = "OS_WORK_ORDER_PROMPT_SUPPRESSED"
    OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED = "OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED"
    OS_WORK_ORDER_APPROVAL_NOT_PENDING = "OS_WORK_ORDER_APPROVAL_NOT_PENDING"
    OS_WORK_ORDER_LEASE_CONFLICT = "OS_WORK_ORDER_LEASE_CONFLICT"
    OS_WORK_ORDER_CALLER_NOT_ALLOWED = "OS_WORK_ORDER_CALLER_NOT_ALLOWED"
    # Seed 003 (engine capability maps).
    ECM_APPEND_ONLY_VIOLATION = "ECM_APPEND_ONLY_VIOLATION"
    ECM_IDEMPOTENCY_REPLAY = "ECM_IDEMPOTENCY_REPLAY"
    ECM_TENANT_SCOPE_VIOLATION = "ECM_TENANT_SCOPE_VIOLATION"
    ECM_CONTRACT_VALIDATION_FAILED = "ECM_CONTRACT_VALIDATION_FAILED"
    ECM_VERSION_ROUTE_CONFLICT = "ECM_VERSION_ROUTE_CONFLICT"
    # Seed 000 row 5 (simulation catalog).
    SIMCAT_APPEND_ONLY_VIOLATION = "SIMCAT_APPEND_ONLY_VIOLATION"
    SIMCAT_IDEMPOTENCY_REPLAY = "SIMCAT_IDEMPOTENCY_REPLAY"
    SIMCAT_TENANT_SCOPE_VIOLATION = "SIMCAT_TENANT_SCOPE_VIOLATION"
    SIMCAT_CONTRACT_VALIDATION_FAILED = "SIMCAT_CONTRACT_VALIDATION_FAILED"
    # Seed 000 row 7 (artifacts ledger).
    ART_APPEND_ONLY_VIOLATION = "ART_APPEND_ONLY_VIOLATION"
    ART_IDEMPOTENCY_REPLAY = "ART_IDEMPOTENCY_REPLAY"
    ART_TENANT_SCOPE_VIOLATION = "ART_TENANT_SCOPE_VIOLATION"
    ART_CONTRACT_VALIDATION_FAILED = "ART_CONTRACT_VALIDATION_FAILED"
    ART_DUPLICATE_KEY = "ART_DUPLICATE_KEY"
    ART_SCOPE_TENANT_MISMATCH = "ART_SCOPE_TENANT_MISMATCH"
    # PH1.CAPREQ (seed 000 row 26; docs/DB_WIRING/PH1_CAPREQ.md).
    CAPREQ_APPEND_ONLY_VIOLATION = "CAPREQ_APPEND_ONLY_VIOLATION"
    CAPREQ_IDEMPOTENCY_REPLAY = "CAPREQ_IDEMPOTENCY_REPLAY"
    CAPREQ_TENANT_SCOPE_VIOLATION = "CAPREQ_TENANT_SCOPE_VIOLATION"
    CAPREQ_CONTRACT_VALIDATION_FAILED = "CAPREQ_CONTRACT_VALIDATION_FAILED"
    CAPREQ_NOT_FOUND = "CAPREQ_NOT_FOUND"
    CAPREQ_INVALID_TRANSITION = "CAPREQ_INVALID_TRANSITION"
    CAPREQ_TERMINAL_STATE = "CAPREQ_TERMINAL_STATE"
    # PH1.POSITION (seed 000 row 22; docs/DB_WIRING/PH1_POSITION.md).
    POSITION_APPEND_ONLY_VIOLATION = "POSITION_APPEND_ONLY_VIOLATION"
    POSITION_IDEMPOTENCY_REPLAY = "POSITION_IDEMPOTENCY_REPLAY"
    POSITION_TENANT_SCOPE_VIOLATION = "POSITION_TENANT_SCOPE_VIOLATION"
    POSITION_CONTRACT_VALIDATION_FAILED = "POSITION_CONTRACT_VALIDATION_FAILED"
    POSITION_NOT_FOUND = "POSITION_NOT_FOUND"
    POSITION_DUPLICATE_KEY = "POSITION_DUPLICATE_KEY"
    POSITION_INVALID_TRANSITION = "POSITION_INVALID_TRANSITION"
    # PH1.ACCESS.001 + PH2.ACCESS.002 (seed 000 row 10; docs/DB_WIRING/PH1_ACCESS_001_PH2_ACCESS_002.md).
    ACCESS_APPEND_ONLY_VIOLATION = "ACCESS_APPEND_ONLY_VIOLATION"
    ACCESS_IDEMPOTENCY_REPLAY = "ACCESS_IDEMPOTENCY_REPLAY"
    ACCESS_TENANT_SCOPE_VIOLATION = "ACCESS_TENANT_SCOPE_VIOLATION"
    ACCESS_CONTRACT_VALIDATION_FAILED = "ACCESS_CONTRACT_VALIDATION_FAILED"
    ACCESS_OVERRIDE_SCOPE_CONFLICT = "ACCESS_OVERRIDE_SCOPE_CONFLICT"
    # PH1.LINK (seed 000 row 20; docs/DB_WIRING/PH1_LINK.md).
    LINK_APPEND_ONLY_VIOLATION = "LINK_APPEND_ONLY_VIOLATION"
    LINK_IDEMPOTENCY_REPLAY = "LINK_IDEMPOTENCY_REPLAY"
    LINK_TENANT_SCOPE_VIOLATION = "LINK_TENANT_SCOPE_VIOLATION"
    LINK_CONTRACT_VALIDATION_FAILED = "LINK_CONTRACT_VALIDATION_FAILED"
    LINK_REFUSE_INVALID = "LINK_REFUSE_INVALID"
    LINK_REFUSE_NOT_FOUND = "LINK_REFUSE_NOT_FOUND"
    # PH1.ONB (seed 000 row 21; docs/DB_WIRING/PH1_ONB.md).
    ONB_REFUSE_INVALID = "ONB_REFUSE_INVALID"
    ONB_REFUSE_NOT_FOUND = "ONB_REFUSE_NOT_FOUND"
    # Seed 000 row 4 (PBS tables).
    PBS_APPEND_ONLY_VIOLATION = "PBS_APPEND_ONLY_VIOLATION"
    PBS_IDEMPOTENCY_REPLAY = "PBS_IDEMPOTENCY_REPLAY"
    PBS_TENANT_SCOPE_VIOLATION = "PBS_TENANT_SCOPE_VIOLATION"
    PBS_CONTRACT_VALIDATION_FAILED = "PBS_CONTRACT_VALIDATION_FAILED"
    PBS_PROCESS_VERSION_CONFLICT = "PBS_PROCESS_VERSION_CONFLICT"
    # Seed 000 row 9 (PH1.VOICE.ID).
    VID_APPEND_ONLY_VIOLATION = "VID_APPEND_ONLY_VIOLATION"
    VID_ENROLLMENT_SESSION_NOT_FOUND = "VID_ENROLLMENT_SESSION_NOT_FOUND"
    VID_ENROLLMENT_SESSION_EXISTS = "VID_ENROLLMENT_SESSION_EXISTS"
    VID_ENROLLMENT_NOT_LOCKED = "VID_ENROLLMENT_NOT_LOCKED"
    VID_ENROLLMENT_SESSION_CLOSED = "VID_ENROLLMENT_SESSION_CLOSED"
    # PH1.M (seed 000 row 23; docs/DB_WIRING/PH1_M.md).
    M_APPEND_ONLY_VIOLATION = "M_APPEND_ONLY_VIOLATION"
    M_IDEMPOTENCY_REPLAY = "M_IDEMPOTENCY_REPLAY"
    M_TENANT_SCOPE_VIOLATION = "M_TENANT_SCOPE_VIOLATION"
    M_CONTRACT_VALIDATION_FAILED = "M_CONTRACT_VALIDATION_FAILED"
    # PH1.K (seed 000 row 11; docs/DB_WIRING/PH1_K.md).
    K_APPEND_ONLY_VIOLATION = "K_APPEND_ONLY_VIOLATION"
    K_IDEMPOTENCY_REPLAY = "K_IDEMPOTENCY_REPLAY"
    K_FAIL_TENANT_SCOPE_MISMATCH = "K_FAIL_TENANT_SCOPE_MISMATCH"
    K_FAIL_EVENT_FIELDS_INVALID = "K_FAIL_EVENT_FIELDS_INVALID"
    K_FAIL_SESSION_INVALID = "K_FAIL_SESSION_INVALID"
    # Seed 000 row 12 (PH1.W).
    W_APPEND_ONLY_VIOLATION = "W_APPEND_ONLY_VIOLATION"
    W_ENROLL_ALREADY_IN_PROGRESS = "W_ENROLL_ALREADY_IN_PROGRESS"
    W_ENROLL_SAMPLE_INVALID = "W_ENROLL_SAMPLE_INVALID"
    W_ENROLL_SAMPLE_SESSION_CLOSED = "W_ENROLL_SAMPLE_SESSION_CLOSED"
    W_ENROLL_PASS_TARGET_NOT_MET = "W_ENROLL_PASS_TARGET_NOT_MET"
    # Infrastructure (retriable).
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    WRITER_FENCED = "WRITER_FENCED"
    CONCURRENT_APPEND = "CONCURRENT_APPEND"
    LEDGER_WRITE_UNCONFIRMED = "LEDGER_WRITE_UNCONFIRMED"


@dataclass(frozen=True)
class ReasonPolicy:
    """How the writer treats a message refused for this reason."""

    blocks_aggregate: bool
    retriable: bool = False


# The pipeline's own codes: every slice may use them. Every other member belongs to exactly one slice, which
# declares it in its ``SLICE`` (``reasons``) with its blocking policy (``non_blocking``); the registry checks
# that no code is claimed twice (tests/unit/test_registry.py checks every member has an owner).
CORE_REASONS = frozenset(
    {
        ReasonCode.EVENT_UNDECODABLE,
        ReasonCode.EVENT_OVERSIZE,
        ReasonCode.EVENT_UNKNOWN_LEDGER,
        ReasonCode.EVENT_UNKNOWN_TYPE,
        ReasonCode.EVENT_TENANT_MISSING,
        ReasonCode.EVENT_TENANT_MISMATCH,
        ReasonCode.EVENT_KEY_MISMATCH,
        ReasonCode.EVENT_WRONG_TOPIC,
        ReasonCode.EVENT_SCHEMA_INVALID,
        ReasonCode.IDEMPOTENCY_REPLAY,
        ReasonCode.IDEMPOTENCY_CONFLICT,
        ReasonCode.HELD_BEHIND_DEAD_LETTER,
        ReasonCode.REFERENCE_UNKNOWN,
        ReasonCode.DEAD_LETTER_APPEND_ONLY_VIOLATION,
        ReasonCode.TENANT_SCOPE_VIOLATION,
        ReasonCode.DATABASE_UNAVAILABLE,
        ReasonCode.BROKER_UNAVAILABLE,
        ReasonCode.WRITER_FENCED,
        ReasonCode.CONCURRENT_APPEND,
        ReasonCode.LEDGER_WRITE_UNCONFIRMED,
    }
)

# Input damage blocks the aggregate: applying later events over a hole would put its projection in a state
# the engine never produced. Decisions that leave the aggregate consistent (a conflict keeps the original
# row; a duplicate changes nothing) do not block, nor does a reference to a user, device or session that
# does not exist yet: later events are not wrong because of it, and once the referenced row exists the
# operator re-drives the one dead letter (`selene-ledger dlq redrive ID`). Slices add theirs.
CORE_NON_BLOCKING = frozenset(
    {ReasonCode.REFERENCE_UNKNOWN, ReasonCode.IDEMPOTENCY_REPLAY, ReasonCode.IDEMPOTENCY_CONFLICT}
)
_RETRIABLE = {
    ReasonCode.DATABASE_UNAVAILABLE,
    ReasonCode.BROKER_UNAVAILABLE,
    ReasonCode.WRITER_FENCED,
    ReasonCode.CONCURRENT_APPEND,
    ReasonCode.LEDGER_WRITE_UNCONFIRMED,
}


def core_policy(code: ReasonCode) -> ReasonPolicy:
    """The pipeline's policy for ``code``, before any slice's word on blocking."""
    return ReasonPolicy(blocks_aggregate=code not in CORE_NON_BLOCKING, retriable=code in _RETRIABLE)


def policy(code: ReasonCode) -> ReasonPolicy:
    """The writer's policy for ``code``: the pipeline's, and the owning slice's word on blocking."""
    from contracts.registry import registry  # the registry imports the slices, which import this module

    return registry().policy(code)


class SeleneError(Exception):
    """Base of every error this project raises on purpose; carries a reason code."""

    reason_code: ReasonCode = ReasonCode.EVENT_SCHEMA_INVALID

    def __init__(self, message: str, reason_code: ReasonCode | None = None) -> None:
        if reason_code is not None:
            self.reason_code = reason_code
        super().__init__(f"{self.reason_code}: {message}")
        self.detail = message

    @property
    def retriable(self) -> bool:
        return core_policy(self.reason_code).retriable


class ContractViolation(SeleneError):
    """An event does not satisfy its contract (decode, schema, size, tenant, key)."""


class TenantScopeViolation(SeleneError):
    """A read or write crossed a tenant boundary; the database refused or found nothing."""

    reason_code = ReasonCode.TENANT_SCOPE_VIOLATION


class RetriableError(SeleneError):
    """The database or broker was unavailable, or this writer was fenced: the batch may be retried."""

    reason_code = ReasonCode.DATABASE_UNAVAILABLE
