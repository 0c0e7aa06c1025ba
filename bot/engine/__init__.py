"""The pure dialogue engine: ``Engine.handle(state, event, now) -> Outcome``.

It knows nothing of Telegram, SQL or the clock. Edges turn their input into
:mod:`events <bot.engine._events>`, call :meth:`Engine.handle`, and carry out the
:class:`Outcome` (store it atomically, then send its messages).
"""

from bot.engine._buttons import OVER_CUES, UNDER_CUES, Cue
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
from bot.engine._questions import (
    ConsentQuestion,
    CrisisQuestion,
    DeleteQuestion,
    KeptAnswersQuestion,
    LevelQuestion,
    MenuQuestion,
    Pending,
    Question,
    ReminderTimeQuestion,
    SettingsQuestion,
    StopQuestion,
    TimezoneQuestion,
)
from bot.engine._safety import STOP_WORDS, is_stop_word, normalise
from bot.engine._state import ClientState, Frame, Part, Session
from bot.engine._terms import LEVELS, AdvanceRule, Contract, Opt, ReminderTime, Settings

__all__ = [
    "COMMANDS",
    "LEVELS",
    "OVER_CUES",
    "RISK_KINDS",
    "STOP_WORDS",
    "UNDER_CUES",
    "AdvanceRule",
    "Answer",
    "Blocked",
    "Button",
    "ButtonSpec",
    "ClientState",
    "Clinician",
    "Command",
    "ConsentQuestion",
    "Contract",
    "CrisisQuestion",
    "CrisisResource",
    "Cue",
    "DeleteQuestion",
    "Effect",
    "Engine",
    "Event",
    "Frame",
    "KeptAnswersQuestion",
    "LedgerEntry",
    "LevelQuestion",
    "MenuQuestion",
    "Message",
    "NonText",
    "Opt",
    "Outcome",
    "Part",
    "Pending",
    "Policy",
    "Question",
    "Redeemed",
    "RegionLines",
    "ReminderTime",
    "ReminderTimeQuestion",
    "Resources",
    "Session",
    "Settings",
    "SettingsQuestion",
    "Start",
    "StopQuestion",
    "Text",
    "Texts",
    "TimerFired",
    "TimerRequest",
    "TimezoneQuestion",
    "is_stop_word",
    "normalise",
]
