"""``ask``: a question answered with a button, typed text, or either."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.engine._buttons import ChoiceMade, Press
from bot.engine._context import Choice
from bot.engine._state import Part
from bot.engine._terms import Opt
from bot.engine.steps._base import Edge, StepKind, TextAt
from bot.script import _model as m
from bot.script._yaml import Path_

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class Ask(StepKind):
    """Asks a question: each choice may set variables and jump; typed text may be kept."""

    key = "ask"
    noun = "question"
    parts = (Part.ASK,)

    def edges(self, step: m.Step, following: str | None) -> list[Edge]:
        ask = _ask(step)
        implicit: Path_ = ("next",) if step.next is not None else ()
        saved = {ask.save_as} if ask.save_as is not None else set()
        edges = [
            Edge(step.id, choice.goto or following,
                 ("ask", "choices", i, "goto") if choice.goto is not None else implicit,
                 choice.label, frozenset(saved | set(choice.set or {})))
            for i, choice in enumerate(ask.choices)
        ]
        if ask.free_text is not None:
            typed = {ask.free_text.save_as} if ask.free_text.save_as is not None else set()
            edges.append(Edge(step.id, following, implicit, "typed answer", frozenset(typed)))
        return edges

    def texts(self, step: m.Step) -> Iterable[TextAt]:
        return [(("ask", "text"), _ask(step).text, False)]

    def begin(self, run: Run, step: m.Step) -> None:
        run.ctx.session.frame.part = Part.ASK
        run.show()

    def show(self, run: Run, step: m.Step) -> None:
        ask = _ask(step)
        rows: list[list[Choice]] = [[(choice.label, ChoiceMade(i))]
                                    for i, choice in enumerate(ask.choices)]
        run.ctx.send(run.ctx.script_text(ask.text), rows)

    def on_button(self, run: Run, step: m.Step, press: Press) -> None:
        ask = _ask(step)
        if not isinstance(press, ChoiceMade) or press.index >= len(ask.choices):
            run.show()
            return
        ctx = run.ctx
        choice = ask.choices[press.index]
        value = choice.value or choice.label
        if ask.save_as:
            ctx.session.vars[ask.save_as] = value
        if choice.set:
            ctx.session.vars.update(choice.set)
        ctx.log("answer", step=step.id, choice=value)
        ctx.session.prompts_in_a_row = 0  # the script asked: the client chose to go on
        run.enter(choice.goto or ctx.script.following(step.id))

    def text_limit(self, run: Run, step: m.Step) -> int | None:
        rules = _ask(step).free_text
        return None if rules is None else rules.max_length

    def on_text(self, run: Run, step: m.Step, text: str) -> None:
        ctx = run.ctx
        rules = _ask(step).free_text
        assert rules is not None
        if rules.number:
            value = as_int(text)
            low = rules.min if rules.min is not None else -(10**9)
            high = rules.max if rules.max is not None else 10**9
            if value is None or not low <= value <= high:
                ctx.say("unexpected.out_of_range", low=low, high=high)
                run.show()
                return
            if rules.save_as:
                ctx.session.vars[rules.save_as] = value
        else:
            if len(text) < rules.min_length:
                ctx.say("unexpected.empty")
                run.show()
                return
            run.keep(text)
            if rules.save_as:
                stored = text if ctx.opted(Opt.STORE_FREE_TEXT) else ""
                ctx.session.vars[rules.save_as] = stored
        ctx.log("answer", step=step.id, free_text=True)
        ctx.session.prompts_in_a_row = 0
        run.enter_after(step.id)


def typed_variables(step: m.Step) -> list[str]:
    """The variables a step keeps typed words in (not numbers): emptied when they are deleted."""
    rules = step.ask.free_text if step.ask is not None else None
    if rules is None or rules.save_as is None or rules.number:
        return []
    return [rules.save_as]


def as_int(text: str) -> int | None:
    """A whole number typed with ASCII digits (at most six), else None."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 6:
        return int(text)
    return None


def _ask(step: m.Step) -> m.Ask:
    assert step.ask is not None
    return step.ask
