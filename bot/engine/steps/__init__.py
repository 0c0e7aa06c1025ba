"""The kinds of step, and running a session's steps through them.

:data:`KINDS` is the one table of step kinds: the engine runs steps through it
(:class:`Run`), and ``rehearse check``'s proofs and the drawings (:mod:`bot.check`) read what
each kind can lead to, shows and calms with from it.
"""

from bot.engine.steps._base import CheckInSpec, Deeper, Drawing, Edge, Handler, StepKind, TextAt
from bot.engine.steps._checkins import CHECKIN_PARTS, MAX_CALM_ROUNDS
from bot.engine.steps._kinds import KINDS, kind_of
from bot.engine.steps._run import Run, frame_fits

__all__ = [
    "CHECKIN_PARTS",
    "KINDS",
    "MAX_CALM_ROUNDS",
    "CheckInSpec",
    "Deeper",
    "Drawing",
    "Edge",
    "Handler",
    "Run",
    "StepKind",
    "TextAt",
    "frame_fits",
    "kind_of",
]
