"""The client's own safety plan: Stanley & Brown's six parts, in the client's words.

Stanley & Brown (2012), *Safety Planning Intervention: A Brief Intervention to Mitigate
Suicide Risk*, Cognitive and Behavioral Practice 19:256-264, lay the plan out as six steps,
used in order in a crisis: recognising one's warning signs; internal coping strategies;
people and social settings that provide distraction; people one can ask for help;
professionals and agencies (crisis lines included); making the environment safe. The parts
below are those six, in that order.

The plan is kept in the store, versioned (:class:`bot.store.PlanRecord`); the service hands
the newest accepted version (and a therapist's suggestion the client has not reviewed yet) to
the engine in the client's state, as it does the connection log's note, and never stores it
with the state. A change the engine decides is a :class:`PlanChange` in the outcome,
committed with the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from bot.engine._buttons import ButtonKey
from bot.engine._terms import Model

#: The six parts, in the order of the plan (and of its questions).
PlanPart = Literal["warning_signs", "internal_coping", "distraction", "people_to_ask",
                   "professionals", "safe_environment"]
PARTS: tuple[PlanPart, ...] = get_args(PlanPart)
#: The label of each part's button, also its heading wherever the plan is shown.
PART_LABELS: dict[PlanPart, ButtonKey] = {
    "warning_signs": "plan_warning_signs", "internal_coping": "plan_internal_coping",
    "distraction": "plan_distraction", "people_to_ask": "plan_people_to_ask",
    "professionals": "plan_professionals", "safe_environment": "plan_safe_environment",
}
#: The most characters one part holds (a short part, read in a hard moment).
PART_CHARS = 400
#: Who wrote a saved version when the client did.
CLIENT = "client"


class SafetyPlan(Model):
    """A safety plan: each part is the client's text, empty while not written."""

    warning_signs: str = ""
    internal_coping: str = ""
    distraction: str = ""
    people_to_ask: str = ""
    professionals: str = ""
    safe_environment: str = ""

    def part(self, part: PlanPart) -> str:
        """The text of one part ("" when not written)."""
        return str(getattr(self, part))

    def with_part(self, part: PlanPart, text: str) -> SafetyPlan:
        """A copy with one part changed."""
        return self.model_copy(update={part: text})

    def filled(self) -> list[PlanPart]:
        """The parts that have text, in order."""
        return [part for part in PARTS if self.part(part)]

    def parts(self) -> dict[str, str]:
        """Every part by name, as stored."""
        return {part: self.part(part) for part in PARTS}


class Suggestion(Model):
    """A therapist's suggested wording that the client has not reviewed yet.

    Attributes:
        version: Its version in the store (the client's review refers to it).
        by: The therapist (or ``operator``) who wrote it.
        plan: The suggested parts (empty ones suggest nothing).
    """

    version: int
    by: str
    plan: SafetyPlan


@dataclass(frozen=True, slots=True)
class PlanChange:
    """A version of the plan to save with the event.

    Attributes:
        plan: The whole plan as it is after the change.
        author: :data:`CLIENT`, or the therapist who suggested it.
        status: ``accepted`` (the client's plan from now on) or ``suggested`` (waits for the
            client's yes).
        changed: The parts this version changed.
        suggestion: The suggestion's version whose wording the client accepted, if any.
    """

    plan: SafetyPlan
    author: str
    status: Literal["accepted", "suggested"]
    changed: tuple[PlanPart, ...]
    suggestion: int | None = None


def plan_from(parts: Mapping[str, str]) -> SafetyPlan:
    """A plan from parts by name (a therapist's suggestion from a file, a flag or a command).

    Each text is stripped; a part left out or empty suggests nothing.

    Raises:
        ValueError: For a name that is not one of :data:`PARTS`, or a text longer than
            :data:`PART_CHARS`, saying which.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"not a part of the safety plan: {', '.join(unknown)} (the parts: "
                         f"{', '.join(PARTS)})")
    texts = {part: str(text).strip() for part, text in parts.items()}
    long = [part for part, text in texts.items() if len(text) > PART_CHARS]
    if long:
        raise ValueError(f"longer than {PART_CHARS} characters: {', '.join(long)} (a part is "
                         "read in a hard moment: keep it short)")
    return SafetyPlan.model_validate(texts)
