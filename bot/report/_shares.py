"""What a client shared: the sessions of the ledger (:mod:`bot.engine._summary` reads them,
with the share rows the client's ``/summary`` choices wrote) that the therapist may see.

The data contract with the in-chat summary flow is documented in docs/therapists.md ("What
the report is made of"). Nothing reaches the therapist while the client does not hold the
sharing opt-in, whatever was shared before.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.engine import SESSION_KINDS, SHARE_ITEMS, SHARED, WITHDRAWN, ClientState, Opt
from bot.engine import Summary as Session
from bot.engine import sessions as _sessions
from bot.store import LedgerRow

__all__ = ["SESSION_KINDS", "SHARED", "SHARE_ITEMS", "WITHDRAWN", "Session", "shared_sessions",
           "sharing"]


def sharing(state: ClientState) -> bool:
    """Whether the client holds the opt-in to share with their therapist."""
    return Opt.SHARE_WITH_THERAPIST.value in state.consents


def shared_sessions(state: ClientState, ledger: Sequence[LedgerRow]) -> list[Session]:
    """The ended sessions the client shares something of, oldest first (none without the
    sharing opt-in), with their typed answers as the client last edited them (the state holds
    them only while the client keeps what they type)."""
    if not sharing(state):
        return []
    return [s for s in _sessions(ledger, state.kept) if s.items and s.ended_at is not None]
