"""PH1.F projections: identities, devices and sessions from PH1.F/PH1.L events on the audit ledger, and
the reference guard (the conversation ledger's row mapping is declared in ``contracts.foundation``).

Rules a user of these tables expects (docs/DB_WIRING/PH1_F.md): a device belongs to one user and so to one
tenant for good; a session needs a device of its user; revoking a device or disabling an identity does not
erase history. A write that breaks a rule is rejected with a reason and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent
from contracts.foundation import (
    SESSION_TRANSITIONS,
    DeviceRegistered,
    DeviceRevoked,
    IdentityUpserted,
    SessionLifecycle,
    SessionOpened,
    SessionStateTransition,
)
from contracts.reasons import ReasonCode

IDENTITIES = TableSpec(
    "os_core.identities",
    columns=(
        ("user_id", "text"),
        ("tenant_id", "text"),
        ("display_name", "text"),
        ("status", "text"),
        ("speaker_id", "text"),
        ("primary_language", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("last_event_id", "bigint"),
    ),
    key=("user_id",),
)
DEVICES = TableSpec(
    "os_core.devices",
    columns=(
        ("device_id", "text"),
        ("tenant_id", "text"),
        ("user_id", "text"),
        ("device_type", "text"),
        ("status", "text"),
        ("last_seen_at", "timestamptz"),
        ("audio_profile_ref", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("last_event_id", "bigint"),
    ),
    key=("device_id",),
)
SESSIONS = TableSpec(
    "os_core.sessions",
    columns=(
        ("session_id", "text"),
        ("tenant_id", "text"),
        ("user_id", "text"),
        ("device_id", "text"),
        ("session_state", "text"),
        ("opened_at", "timestamptz"),
        ("closed_at", "timestamptz"),
        ("last_activity_at", "timestamptz"),
        ("last_event_id", "bigint"),
    ),
    key=("session_id",),
)

_FOUNDATION_TYPES = (IdentityUpserted, DeviceRegistered, DeviceRevoked, SessionLifecycle)


class FoundationProjection(Projection):
    """identities, devices, sessions <- IDENTITY_UPSERTED, DEVICE_*, SESSION_* on the audit ledger."""

    name = "foundation"
    writes = (IDENTITIES, DEVICES, SESSIONS)
    ledgers = frozenset({"audit_events"})

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, _FOUNDATION_TYPES)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = event.payload
        yield IDENTITIES, (p.user_id,)  # type: ignore[attr-defined]
        if isinstance(p, DeviceRegistered | DeviceRevoked | SessionLifecycle):
            yield DEVICES, (p.device_id,)
        if isinstance(p, SessionLifecycle):
            yield SESSIONS, (p.session_id,)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = event.payload
        at, ref, tenant = event.occurred_at, event.event_id, event.tenant_id
        if isinstance(p, IdentityUpserted):
            old = view.get(IDENTITIES, (p.user_id,))
            if old is not None and old["tenant_id"] != tenant:
                raise Rejection(ReasonCode.TENANT_SCOPE_VIOLATION, f"user {p.user_id} belongs to another tenant")
            view.put(
                IDENTITIES,
                {
                    "user_id": p.user_id,
                    "tenant_id": tenant,
                    "display_name": p.display_name,
                    "status": p.status,
                    "speaker_id": p.speaker_id,
                    "primary_language": p.primary_language,
                    "created_at": old["created_at"] if old else at,
                    "updated_at": at,
                    "last_event_id": ref,
                },
            )
            return
        user = view.get(IDENTITIES, (p.user_id,))  # type: ignore[attr-defined]
        if user is None or user["tenant_id"] != tenant:
            raise Rejection(ReasonCode.REFERENCE_UNKNOWN, f"no identity {p.user_id} in tenant {tenant}")  # type: ignore[attr-defined]
        assert isinstance(p, DeviceRegistered | DeviceRevoked | SessionLifecycle)
        device = view.get(DEVICES, (p.device_id,))
        if device is not None and device["tenant_id"] != tenant:
            raise Rejection(ReasonCode.TENANT_SCOPE_VIOLATION, f"device {p.device_id} is bound to another tenant")
        if device is not None and device["user_id"] != p.user_id:
            raise Rejection(ReasonCode.TENANT_SCOPE_VIOLATION, f"device {p.device_id} belongs to another user")
        if isinstance(p, DeviceRegistered):
            view.put(
                DEVICES,
                {
                    "device_id": p.device_id,
                    "tenant_id": tenant,
                    "user_id": p.user_id,
                    "device_type": p.device_type,
                    "status": "ACTIVE",
                    "last_seen_at": p.last_seen_at or at,
                    "audio_profile_ref": p.audio_profile_ref,
                    "created_at": device["created_at"] if device else at,
                    "updated_at": at,
                    "last_event_id": ref,
                },
            )
            return
        if device is None:
            raise Rejection(ReasonCode.REFERENCE_UNKNOWN, f"no device {p.device_id} for user {p.user_id}")
        if isinstance(p, DeviceRevoked):
            view.put(DEVICES, {**device, "status": "REVOKED", "updated_at": at, "last_event_id": ref})
            return
        assert isinstance(p, SessionLifecycle)
        self._session(view, event, p, device)

    def _session(self, view: RowView, event: LedgerEvent, p: SessionLifecycle, device: Row) -> None:
        """PH1.L: a session's lifecycle (docs/DB_WIRING/PH1_L.md). The state moves only along
        ``SESSION_TRANSITIONS``; user, device and ``opened_at`` never change; ``last_activity_at`` never moves
        back; ``closed_at`` is set exactly while the session is ``CLOSED``."""
        at, tenant = event.occurred_at, event.tenant_id
        session = view.get(SESSIONS, (p.session_id,))
        if session is not None and (session["tenant_id"] != tenant or session["user_id"] != p.user_id):
            raise Rejection(ReasonCode.TENANT_SCOPE_VIOLATION, f"session {p.session_id} belongs to another user")
        if session is not None and session["device_id"] != p.device_id:
            raise Rejection(
                ReasonCode.PH1_L_IMMUTABLE_FIELD_CHANGED,
                f"session {p.session_id} is on device {session['device_id']}, not {p.device_id}",
            )
        if isinstance(p, SessionOpened) and device["status"] != "ACTIVE":
            raise Rejection(ReasonCode.REFERENCE_UNKNOWN, f"device {p.device_id} is revoked")
        if session is None and not isinstance(p, SessionOpened):
            raise Rejection(ReasonCode.REFERENCE_UNKNOWN, f"no session {p.session_id}")
        target = p.state_to if isinstance(p, SessionStateTransition) else p.STATE
        if session is not None:
            state = session["session_state"]
            expected = p.state_from if isinstance(p, SessionStateTransition) else p.FROM
            if (expected is not None and expected != state) or (
                target != state and target not in SESSION_TRANSITIONS[state]
            ):
                raise Rejection(
                    ReasonCode.PH1_L_INVALID_TRANSITION,
                    f"session {p.session_id} is {state}: {event.event_type} to {target} is not allowed",
                )
        opened = session["opened_at"] if session else at
        before = session["last_activity_at"] if session else opened
        activity = p.last_activity_at
        if activity is None:  # the event's time, never before what the session has seen already
            activity = max(at, before)
        elif activity < before:
            raise Rejection(
                ReasonCode.PH1_L_ACTIVITY_WENT_BACK,
                f"session {p.session_id}: last activity {activity.isoformat()} is before {before.isoformat()}",
            )
        view.put(
            SESSIONS,
            {
                "session_id": p.session_id,
                "tenant_id": tenant,
                "user_id": p.user_id,
                "device_id": p.device_id,
                "session_state": target,
                "opened_at": opened,
                "closed_at": max(at, opened) if target == "CLOSED" else None,
                "last_activity_at": activity,
                "last_event_id": event.event_id,
            },
        )


def _refs(event: LedgerEvent) -> tuple[str | None, str | None, str | None]:
    p = event.payload
    return (getattr(p, "user_id", None), getattr(p, "device_id", None), getattr(p, "session_id", None))


class ReferenceGuard(Projection):
    """Audit rows may name a user, device and session: they must exist in the event's tenant and agree
    with each other (the device is the user's; the session is the user's on that device).

    The database's tenant-carrying foreign keys enforce existence too; checking here first turns a bad
    reference into a dead letter with a reason instead of a failed batch.
    """

    name = "foundation_references"
    ledgers = frozenset({"audit_events"})
    live_only = True

    def handles(self, event: LedgerEvent) -> bool:
        return event.ledger in self.ledgers and any(_refs(event))

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        user, device, session = _refs(event)
        if user:
            yield IDENTITIES, (user,)
        if device:
            yield DEVICES, (device,)
        if session:
            yield SESSIONS, (session,)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        user, device, session = _refs(event)
        tenant = event.tenant_id
        rows = []
        if user:
            rows.append(("identity", user, view.get(IDENTITIES, (user,))))
        if device:
            rows.append(("device", device, view.get(DEVICES, (device,))))
        if session:
            rows.append(("session", session, view.get(SESSIONS, (session,))))
        for kind, ident, row in rows:
            if row is None:
                raise Rejection(ReasonCode.REFERENCE_UNKNOWN, f"unknown {kind} {ident}")
            if row["tenant_id"] != tenant:
                raise Rejection(ReasonCode.TENANT_SCOPE_VIOLATION, f"{kind} {ident} belongs to another tenant")
        dev = view.get(DEVICES, (device,)) if device else None
        if dev is not None and user and dev["user_id"] != user:
            raise Rejection(ReasonCode.TENANT_SCOPE_VIOLATION, f"device {device} does not belong to user {user}")
        ses = view.get(SESSIONS, (session,)) if session else None
        if ses is not None and ((user and ses["user_id"] != user) or (device and ses["device_id"] != device)):
            raise Rejection(
                ReasonCode.TENANT_SCOPE_VIOLATION, f"session {session} does not match user {user} and device {device}"
            )


# Run in this order: a projection that creates rows runs before the guard that references them.
PROJECTIONS: tuple[Projection, ...] = (FoundationProjection(), ReferenceGuard())
