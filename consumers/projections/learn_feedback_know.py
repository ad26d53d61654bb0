"""PH1.LEARN's user scope: a ``USER``-scope learning artifact names a user of the event's tenant (upstream: the
user exists and binds to one tenant for LEARN artifacts). Checked live, before the append, on PH1.F's
identities, as the reference guard checks an audit row's user: an unknown user is ``REFERENCE_UNKNOWN`` (the
identity may not be written yet: it arrives on another topic; re-drive it once it is), another tenant's user
``TENANT_SCOPE_VIOLATION``. Replay and rebuild reproduce the live decision instead (``live_only``).
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.projections.foundation import IDENTITIES
from contracts.envelope import LedgerEvent
from contracts.learn_feedback_know import LearnArtifactCommit
from contracts.reasons import ReasonCode


class LearnUserScopeGuard(Projection):
    name = "learn_user_scope"
    ledgers = frozenset({"artifacts_ledger"})
    live_only = True

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, LearnArtifactCommit) and event.payload.scope_type == "USER"

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        assert isinstance(event.payload, LearnArtifactCommit)
        yield IDENTITIES, (event.payload.scope_id,)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        assert isinstance(event.payload, LearnArtifactCommit)
        user = event.payload.scope_id
        identity = view.get(IDENTITIES, (user,))
        if identity is None:
            raise Rejection(ReasonCode.REFERENCE_UNKNOWN, f"a USER-scope artifact of unknown user {user}")
        if identity["tenant_id"] != event.tenant_id:
            raise Rejection(ReasonCode.TENANT_SCOPE_VIOLATION, f"user {user} belongs to another tenant")


PROJECTIONS: tuple[Projection, ...] = (LearnUserScopeGuard(),)
