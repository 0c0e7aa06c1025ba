"""Advice of ``rehearse check`` for a script's author: warnings, never errors."""

from __future__ import annotations

from collections import deque

from bot.check._graph import StepGraph, own_calm
from bot.check._report import Report, item_mark, own, route
from bot.engine.steps.prompt import reach_of
from bot.script import _model as m
from bot.script._load import LoadedScript


class Advice:
    """Warns about level jumps, a session that can end without an ``after`` check-in, and
    prompts and exercises no step uses."""

    def __init__(self, script: LoadedScript, graph: StepGraph, report: Report) -> None:
        self.script = script
        self.meta = script.meta
        self.steps = script.steps
        self.graph = graph
        self.report = report

    def run(self) -> None:
        """Give every piece of advice."""
        if self.steps:
            self._check_level_jumps()
            self._check_after_checkin()
        if self.meta.kind is m.ScriptKind.EXERCISE:
            self._check_unused()

    def _check_level_jumps(self) -> None:
        for step_id, step in self.steps.items():
            if step.prompt is None:
                continue
            here = _fixed_level(self.script, step.prompt)
            for target in self._next_prompt_steps(step_id):
                spec = self.steps[target].prompt
                assert spec is not None
                there = _fixed_level(self.script, spec)
                if there > here + 1:
                    self.report.warn(self.graph.mark(target), "level-jump", (
                        f"the level jumps from {here} (step `{step_id}`) to {there} here; "
                        "consider a prompt at the level in between"))

    def _next_prompt_steps(self, step_id: str) -> list[str]:
        """The prompt steps that can come next after ``step_id`` with no prompt in between."""
        seen: set[str] = set()
        found: list[str] = []
        queue = deque(self.graph.successors(step_id))
        while queue:
            target = queue.popleft()
            if target in seen:
                continue
            seen.add(target)
            if self.steps[target].prompt is not None:
                found.append(target)
            else:
                queue.extend(self.graph.successors(target))
        return found

    def _check_after_checkin(self) -> None:
        def after(step_id: str) -> bool:
            checkin = self.steps[step_id].checkin
            return checkin is not None and checkin.moment is m.Moment.AFTER

        parents = self.graph.search(self.script.first_step, after)
        for step_id in parents:
            if self.steps[step_id].end is not None:
                way = route(parents, step_id)
                self.report.warn(self.graph.mark(step_id), "no-after-checkin", (
                    f"the session can end here without an `after` check-in ({way}); add a "
                    "`checkin` with `moment: after` before it, so the client can notice how "
                    "it went"))

    def _check_unused(self) -> None:
        drawable = self._drawable_levels()
        for prompt_id, prompt in self.script.prompts.items():
            reach = max(drawable.get(None, 0), drawable.get(prompt.topic, 0))
            if (own(self.script, "prompt", prompt_id) and prompt.level <= self.meta.level
                    and prompt.level > reach):
                self.report.warn(item_mark(self.script, "prompt", prompt_id), "unused-prompt", (
                    f"no prompt step can ever show prompt `{prompt_id}` (topic "
                    f"`{prompt.topic}`, level {prompt.level}); add a `prompt` step for it or "
                    "remove it"))
        used = set(self.meta.calm)
        for step in self.steps.values():
            used.update([step.exercise] if step.exercise else [])
            used.update(own_calm(step) or [])
        for exercise_id in self.script.exercises:
            if own(self.script, "exercise", exercise_id) and exercise_id not in used:
                self.report.warn(item_mark(self.script, "exercise", exercise_id), "unused-exercise",
                           f"exercise `{exercise_id}` is never used; run it with an `exercise` "
                           "step, name it in a `calm:` list, or remove it")

    def _drawable_levels(self) -> dict[str | None, int]:
        """The deepest level prompt steps can draw, by topic (None: steps of any topic)."""
        deepest: dict[str | None, int] = {}
        for step in self.steps.values():
            if step.prompt is not None:
                topic = step.prompt.topic
                deepest[topic] = max(deepest.get(topic, 0), reach_of(step.prompt, self.script))
        return deepest


def _fixed_level(script: LoadedScript, spec: m.PromptStep) -> int:
    """The level a prompt step asks for (``current`` counts as the script's level)."""
    return script.meta.level if spec.level == "current" else spec.level
