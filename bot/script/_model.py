"""The script schema: what a therapist may write in a script file.

The models are strict (unknown keys are errors, no type coercion from text) so that a
misspelled key or a stray value is caught at load time rather than in front of a client.
The JSON Schema for editors is generated from these models (:mod:`bot.script._schema`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The patterns of names: ids (:data:`Slug`), variable names (:data:`VarName`), locales.
SLUG = r"^[a-z0-9][a-z0-9-]{0,39}$"
VAR_NAME = r"^[a-z][a-z0-9_]{0,31}$"
LOCALE = r"^[a-z]{2}(-[A-Z]{2})?$"
#: Identifiers of steps, prompts, exercises and scripts: lower-case words joined by dashes.
Slug = Annotated[
    str,
    Field(
        pattern=SLUG,
        description="Lower-case letters, digits and dashes, e.g. `breathe-first`.",
    ),
]
#: Variable names usable in templates and conditions.
VarName = Annotated[
    str,
    Field(
        pattern=VAR_NAME,
        description="Lower-case letters, digits and underscores, e.g. `safe_person`.",
    ),
]
#: Disclosure depth, 1 (light) to 5 (core).
Level = Annotated[int, Field(ge=1, le=5, description="Disclosure depth: 1 light … 5 core.")]
#: Text shown to the client: a Jinja2 template rendered in a sandbox.
Text = Annotated[
    str,
    Field(min_length=1, max_length=3500, description="Text for the client (Jinja2 template)."),
]
#: A button label.
Label = Annotated[str, Field(min_length=1, max_length=40, description="A short button label.")]
Scalar = str | int | float | bool

#: Variables every template and condition may use; the engine provides exactly these.
BUILTIN_VARIABLES: tuple[str, ...] = (
    "name", "level", "max_level", "distress", "expected", "actual", "relief",
    "connection_count", "last_connection", "exercises_done", "character",
)  # fmt: skip

#: Step kinds in the order they are listed in error messages.
STEP_KINDS: tuple[str, ...] = (
    "say",
    "ask",
    "checkin",
    "prompt",
    "roleplay",
    "exercise",
    "connection",
    "branch",
    "set",
    "end",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Consent(StrEnum):
    """Opt-ins a script may require before it starts."""

    CORE = "core"
    STORE_FREE_TEXT = "store_free_text"
    SHARE_WITH_THERAPIST = "share_with_therapist"


class ScriptKind(StrEnum):
    """An exercise runs for a client; a library only lends prompts and exercises."""

    EXERCISE = "exercise"
    LIBRARY = "library"


class Meta(_Strict):
    """The ``script:`` block: who wrote this, what it is, how deep it may go."""

    id: Slug
    title: Annotated[str, Field(min_length=1, max_length=80)]
    version: Annotated[int, Field(ge=1, description="Raise it whenever the content changes.")]
    author: Annotated[str, Field(min_length=1, max_length=80)]
    locale: Annotated[str, Field(pattern=LOCALE)] = "en"
    kind: Annotated[ScriptKind, Field(strict=False)] = ScriptKind.EXERCISE
    level: Level = Field(description="The deepest level this script can reach.")
    summary: Annotated[str, Field(min_length=1, max_length=400)]
    consent: list[Annotated[Consent, Field(strict=False)]] = Field(
        default_factory=lambda: [Consent.CORE],
        description="Opt-ins the client must have given before this script starts.",
    )
    calm: list[Slug] = Field(
        default_factory=list,
        max_length=2,
        description="Default de-escalation exercises for every check-in and role-play.",
    )


class Prompt(_Strict):
    """A graded disclosure prompt: an invitation to share at a given level."""

    id: Slug
    level: Level
    topic: Slug
    text: Text
    smaller: Text | None = Field(
        default=None,
        description="A gentler wording, offered as the 'smaller step' before 'skip'.",
    )


class ExerciseKind(StrEnum):
    """Kinds of reusable exercise; all but journaling calm the body and can de-escalate."""

    BREATHING = "breathing"
    GROUNDING = "grounding"
    RELAXATION = "relaxation"
    SELF_TALK = "self_talk"
    JOURNALING = "journaling"

    @property
    def calming(self) -> bool:
        """Whether the exercise may be used to de-escalate distress."""
        return self is not ExerciseKind.JOURNALING


class ExercisePage(_Strict):
    """One page of an exercise: text and a button to go on, or a journaling question."""

    say: Text | None = None
    write: Text | None = Field(
        default=None, description="A journaling question answered in free text."
    )
    button: Label | None = Field(default=None, description="Label of the 'go on' button.")

    @model_validator(mode="after")
    def _one_of(self) -> ExercisePage:
        if (self.say is None) == (self.write is None):
            raise ValueError("a page needs exactly one of `say` or `write`")
        return self


class Exercise(_Strict):
    """A reusable exercise: paced breathing, grounding, relaxation, self-talk, journaling."""

    id: Slug
    title: Annotated[str, Field(min_length=1, max_length=80)]
    kind: Annotated[ExerciseKind, Field(strict=False)]
    pages: Annotated[list[ExercisePage], Field(min_length=1, max_length=30)]


class Choice(_Strict):
    """One button of an ``ask`` step."""

    label: Label
    value: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    goto: Slug | None = None
    set: dict[VarName, Scalar] | None = None


class FreeText(_Strict):
    """Free-text answer rules of an ``ask`` step."""

    save_as: VarName | None = Field(
        default=None,
        description="Keep the answer in a variable (only if the client opted in to storing text).",
    )
    min_length: Annotated[int, Field(ge=1, le=4000)] = 1
    max_length: Annotated[int, Field(ge=1, le=4000)] = 1000
    number: bool = Field(default=False, description="Expect a whole number.")
    min: int | None = None
    max: int | None = None


class Ask(_Strict):
    """A question answered with buttons and/or free text."""

    text: Text
    choices: Annotated[list[Choice], Field(max_length=8)] = Field(default_factory=list)
    free_text: FreeText | None = None
    save_as: VarName | None = Field(
        default=None, description="Keep the chosen button's value in a variable."
    )

    @model_validator(mode="after")
    def _has_answer(self) -> Ask:
        if not self.choices and self.free_text is None:
            raise ValueError("an `ask` needs `choices`, `free_text` or both")
        return self


class Moment(StrEnum):
    """When a check-in happens relative to an exercise."""

    BEFORE = "before"
    DURING = "during"
    AFTER = "after"


class CheckIn(_Strict):
    """A 0–10 distress check-in (SUDS-style).

    ``before`` also asks how hard the client expects the exercise to be; ``after`` asks how
    hard it was and whether relief followed. Distress at or above the threshold, or any
    under-arousal body cue, runs the ``calm`` exercises with a re-rating after each; still high
    after two rounds, the session closes gently.
    """

    moment: Annotated[Moment, Field(strict=False)] = Moment.DURING
    question: Text | None = Field(default=None, description="Replaces the standard question.")
    body_cues: bool = Field(default=False, description="Also ask which body cues are present.")
    high: Annotated[int, Field(ge=1, le=10)] | None = Field(
        default=None,
        description="Distress that counts as high; the contract's threshold wins if lower.",
    )
    calm: Annotated[list[Slug], Field(max_length=2)] = Field(
        default_factory=list,
        description="De-escalation exercises (defaults to the script's `calm`).",
    )


class PromptStep(_Strict):
    """Draw the next unused graded prompt at the client's current level."""

    topic: Slug | None = Field(default=None, description="Only prompts with this topic.")
    level: Level | Literal["current"] = Field(
        default="current", description="`current` follows the client's level."
    )
    intro: Text | None = None


class Turn(_Strict):
    """One line of the practice partner in a role-play, answered by the client."""

    says: Text
    level: Level = 1
    hint: Text | None = None
    example: Text | None = Field(
        default=None, description="A modelled answer, shown as 'someone might say: …'."
    )
    smaller: Text | None = Field(
        default=None, description="A gentler version of the line, offered as the smaller step."
    )
    hostile: bool = Field(
        default=False, description="Marks a deliberately hard line; only allowed when marked."
    )


class SceneKind(StrEnum):
    """What a role-play scene practises."""

    DISCLOSING = "disclosing"
    REASSURANCE = "reassurance"
    LIMIT = "limit"
    RECEIVING = "receiving"
    REPAIR = "repair"


class Relationship(StrEnum):
    """Who the character is to the client; a partner scene first asks about safety."""

    PARTNER = "partner"
    FRIEND = "friend"


class RolePlay(_Strict):
    """A practice scene: the bot plays a named character, the client rehearses."""

    character: Annotated[str, Field(min_length=1, max_length=30)]
    practises: Annotated[SceneKind, Field(strict=False)]
    relationship: Annotated[Relationship, Field(strict=False)] | None = Field(
        default=None,
        description="Who the character is to the client. A `partner` scene first asks whether "
                    "the client feels safe with their partner, and ends gently, with the "
                    "partner-abuse lines, if they don't or aren't sure.",
    )
    scene: Text = Field(description="The setting, shown in the practice-scene frame.")
    turns: Annotated[list[Turn], Field(min_length=1, max_length=20)]
    checkin_every: Annotated[int, Field(ge=1, le=10)] | None = Field(
        default=None,
        description="A check-in after this many turns, if more often than the contract's "
                    "`checkin_every_turns` (2 by default).",
    )
    calm: Annotated[list[Slug], Field(max_length=2)] = Field(default_factory=list)
    debrief: Text | None = Field(default=None, description="Said after stepping out of the role.")


class BranchArm(_Strict):
    """``if`` a condition holds, ``goto`` a step; the last arm has no ``if``."""

    if_: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, alias="if", description="A condition, e.g. `distress >= 5`."
    )
    goto: Slug


class Step(_Strict):
    """One node of a script. Exactly one kind key (say, ask, checkin, …) per step."""

    id: Slug
    say: Text | None = None
    ask: Ask | None = None
    checkin: CheckIn | None = None
    prompt: PromptStep | None = None
    roleplay: RolePlay | None = None
    exercise: Slug | None = Field(default=None, description="Run an exercise by id.")
    connection: Text | None = Field(
        default=None, description="Invite the client to note a small moment of connection."
    )
    branch: Annotated[list[BranchArm], Field(min_length=1, max_length=10)] | None = None
    set: dict[VarName, Scalar] | None = None
    end: Text | None = None
    next: Slug | None = Field(
        default=None, description="Where to go next (default: the step below)."
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Step:
        present = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(present) != 1:
            listed = ", ".join(STEP_KINDS)
            found = ", ".join(present) or "none"
            raise ValueError(f"a step needs exactly one of: {listed} (found: {found})")
        if self.next is not None and present[0] in ("branch", "end"):
            raise ValueError(f"a `{present[0]}` step cannot have `next`")
        return self

    @property
    def kind(self) -> str:
        """The step's kind: the one kind key it has."""
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)


class ScriptFile(_Strict):
    """A whole script file as written by the therapist."""

    script: Meta
    includes: Annotated[list[str], Field(max_length=10)] = Field(
        default_factory=list,
        description="Files (relative paths) whose prompts and exercises to use.",
    )
    prompts: Annotated[list[Prompt], Field(max_length=500)] = Field(default_factory=list)
    exercises: Annotated[list[Exercise], Field(max_length=100)] = Field(default_factory=list)
    steps: Annotated[list[Step], Field(max_length=50_000)] = Field(default_factory=list)
