"""A client's status and time zone, as the therapist's views show them."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.engine import ClientState, Opt


def client_status(state: ClientState) -> str:
    """A client's status: crisis hold, active, paused, halted (they stopped) or not consented.

    A crisis hold shows whatever else holds, because it is what a therapist acts on.
    """
    if Opt.CORE.value not in state.consents:
        return "not consented"
    if state.crisis_hold_since is not None:
        return "crisis hold"
    if state.halted:
        return "halted"
    if state.session is not None and state.session.paused:
        return "paused"
    return "active"


def client_zone(state: ClientState, default: str) -> ZoneInfo:
    """The client's time zone (from ``/settings``), else the practice's, else UTC."""
    for name in (state.settings.timezone, default):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")
