"""A kind of step: how the engine runs it, and what ``rehearse check`` and the drawings know of it.

Every kind of step of the script language (``say``, ``ask``, ``checkin``, …) has one
:class:`StepKind`, registered in :data:`bot.engine.steps.KINDS`. Its first half is read by the
checker's proofs and the drawings (:mod:`bot.check`) — where the step can lead, the texts it
shows, whether it is a check-in, what it shows that is deeper than level 1, its calming
exercises — and its second half by :class:`~bot.engine.steps._run.Run`, which runs the session:
entering the step, showing it, and taking the client's answers at each of its :attr:`parts
<StepKind.parts>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bot.engine._buttons import Press
from bot.engine._state import Frame, Part
from bot.script import LoadedScript
from bot.script import _model as m
from bot.script._yaml import Path_

if TYPE_CHECKING:
    from bot.engine.steps._run import Run



@dataclass(frozen=True, slots=True)
class Edge:
    """One way from a step to the next.

    Attributes:
        source: The step the edge leaves.
        target: The step it leads to; None where the script runs out (no step follows).
        path: Where the target is written, below the step (empty when it is implicit).
        label: A choice's label or a branch arm's condition, for drawings.
        sets: The variables the engine sets when the client leaves this way.
    """

    source: str
    target: str | None
    path: Path_
    label: str = ""
    sets: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Drawing:
    """How a step is drawn: a line under its id, a shape and a colour style.

    Attributes:
        detail: What the step is, e.g. ``check-in (before)`` or ``prompt · level 2``.
        shape: ``box``, ``hexagon``, ``diamond``, ``stadium`` or ``round``.
        style: ``level1`` … ``level5``, ``checkin`` or none.
    """

    detail: str
    shape: str = "box"
    style: str = ""


@dataclass(frozen=True, slots=True)
class Deeper:
    """Something deeper than level 1 a step can show, which needs a check-in before it.

    Attributes:
        code: The checker's finding code when no check-in comes first.
        subject: The start of its message, e.g. ``role-play `scene```.
        note: Said after the advice, e.g. `` (only level-1 prompts may come first)``.
    """

    code: str
    subject: str
    note: str = ""


#: A text a step shows: its path below the step, the text (None if not written) and whether
#: the engine shows it inside a system text of its own (which needs room).
TextAt = tuple[Path_, str | None, bool]


class Handler:
    """Takes the client's answers at some parts of a step; by default, shows the step again."""

    def show(self, run: Run, step: m.Step) -> None:
        """(Re)send what the client is asked at the current part; changes no progress.

        Raises:
            NotImplementedError: The kind waits at no part (it passes through or ends the
                session): showing it is an impossible transition.
        """
        raise NotImplementedError(f"{type(self).__name__} waits at no part to show")

    def on_button(self, run: Run, step: m.Step, press: Press) -> None:
        """A live button of the current part was pressed."""
        run.show()

    def text_limit(self, run: Run, step: m.Step) -> int | None:
        """The longest text the current part takes, or None when it takes none."""
        return None

    def on_text(self, run: Run, step: m.Step, text: str) -> None:
        """Typed text the current part takes (stripped, visible, within :meth:`text_limit`)."""
        raise NotImplementedError(f"{type(self).__name__} takes no text")

    def skip(self, run: Run, step: m.Step) -> bool:
        """Skip the current part if it can be skipped; whether it was."""
        return False

    def smaller(self, run: Run, step: m.Step) -> bool:
        """Offer a smaller step at the current part if there is one; whether one was."""
        return False


class StepKind(Handler):
    """One kind of step. Subclasses set :attr:`key` and override what their kind does."""

    #: The step's key in the script language (:data:`bot.script._model.STEP_KINDS`).
    key: ClassVar[str]
    #: What an author calls it, in the checker's messages.
    noun: ClassVar[str]
    #: The parts it waits at; none for steps the engine passes through or that end a session.
    parts: ClassVar[tuple[Part, ...]] = ()
    #: A check-in: content deeper than level 1 may follow it.
    checks_in: ClassVar[bool] = False
    #: The engine goes straight on from it (:meth:`onward`) without waiting.
    passes_through: ClassVar[bool] = False

    # -- what the checker and the drawings read -----------------------------------------------
    def edges(self, step: m.Step, following: str | None) -> list[Edge]:
        """Every way out of the step, in the order written (by default: to ``following``)."""
        implicit: Path_ = ("next",) if step.next is not None else ()
        return [Edge(step.id, following, implicit)]

    def texts(self, step: m.Step) -> Iterable[TextAt]:
        """Every text the step shows."""
        return ()

    def calm(self, step: m.Step) -> list[str] | None:
        """Its own calming exercises if it de-escalates high distress (else None)."""
        return None

    def deeper(self, step: m.Step, script: LoadedScript) -> Deeper | None:
        """What it can show that is deeper than level 1 (None: nothing)."""
        return None

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        """How the step is drawn."""
        return Drawing(self.key)

    # -- how the engine runs it ---------------------------------------------------------------
    def onward(self, run: Run, step: m.Step) -> str | None:
        """Where the engine goes straight on to (only for kinds that pass through)."""
        raise NotImplementedError(f"a `{self.key}` step waits")

    def begin(self, run: Run, step: m.Step) -> None:
        """The step is entered (its frame is new): show it, or do what it does at once."""
        raise NotImplementedError(f"a `{self.key}` step passes through")

    def fits(self, script: LoadedScript, step: m.Step, frame: Frame) -> bool:
        """Whether a saved place at this step still exists in a (possibly edited) script."""
        return frame.part in self.parts

    def before_calming(self, run: Run, step: m.Step) -> None:
        """High distress at this step: calming begins (a role-play steps out of the role)."""

    def before_cap(self, run: Run, step: m.Step) -> None:
        """The session cap closes the session at this step (a role-play steps out)."""

    def in_role(self, run: Run, step: m.Step) -> bool:
        """Whether the bot is playing a character at this step now (a role-play's scene)."""
        return False
    def role(self, run: Run, step: m.Step) -> str | None:
        """The character the bot is playing at the client's place in the step, if any."""
        return None

    def reframe(self, run: Run, step: m.Step) -> None:
        """Back from a pause in the role: say again what the scene is (nothing by default)."""

    def after_checkin(self, run: Run, step: m.Step) -> None:
        """A check-in at this step ended well: go on (by default, to the step after it)."""
        run.enter_after(step.id)

    def checkin_of(self, run: Run, step: m.Step) -> CheckInSpec:
        """What a check-in at this step asks (by default: a plain rating, the script's calm)."""
        return CheckInSpec(calm=run.ctx.script.calm_for([]))


@dataclass(frozen=True, slots=True)
class CheckInSpec:
    """What a check-in asks, and how it calms.

    Attributes:
        moment: ``before`` also asks how hard it will be, ``after`` how hard it was and
            whether relief followed.
        body_cues: Also ask which body cues are present.
        high: The step's own threshold of high distress (the contract's wins if lower).
        calm: The calming exercises, in the order they are run.
        question: The script's own wording of the rating question.
    """

    moment: m.Moment = m.Moment.DURING
    body_cues: bool = False
    high: int | None = None
    calm: tuple[str, ...] | list[str] = ()
    question: str | None = None
