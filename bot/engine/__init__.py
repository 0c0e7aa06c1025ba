"""The pure dialogue engine: ``Engine.handle(state, event, now) -> Outcome``.

It knows nothing of Telegram, SQL or the clock. Edges turn their input into
:mod:`events <bot.engine._events>`, call :meth:`Engine.handle`, and carry out the
:class:`Outcome` (store it atomically, then send its messages).
"""

from bot.engine._context import Resources, Texts
from bot.engine._engine import COMMANDS, Engine
from bot.engine._events import (
    Blocked,
    Button,
    Clinician,
    Command,
    Event,
    NonText,
    Redeemed,
    Start,
    Text,
    TimerFired,
)
from bot.engine._outcome import (
    Answer,
    ButtonSpec,
    Effect,
    LedgerEntry,
    Message,
    Outcome,
    TimerRequest,
)
from bot.engine._policy import RISK_KINDS, CrisisResource, Policy, RegionLines
from bot.engine._safety import STOP_WORDS, is_stop_word, normalise
from bot.engine._state import (
    LEVELS,
    AdvanceRule,
    ClientState,
    Contract,
    Opt,
    ReminderTime,
    Settings,
)

__all__ = [
    "COMMANDS",
    "LEVELS",
    "RISK_KINDS",
    "STOP_WORDS",
    "AdvanceRule",
    "Answer",
    "Blocked",
    "Button",
    "ButtonSpec",
    "ClientState",
    "Clinician",
    "Command",
    "Contract",
    "CrisisResource",
    "Effect",
    "Engine",
    "Event",
    "LedgerEntry",
    "Message",
    "NonText",
    "Opt",
    "Outcome",
    "Policy",
    "Redeemed",
    "RegionLines",
    "ReminderTime",
    "Resources",
    "Settings",
    "Start",
    "Text",
    "Texts",
    "TimerFired",
    "TimerRequest",
    "is_stop_word",
    "normalise",
]
