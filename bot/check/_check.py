"""``rehearse check``: the safety proofs for a loaded script, and advice for its author.

The proofs are about the engine's actual behaviour: each kind of step says what it does in
the one table of step kinds (:data:`bot.engine.steps.KINDS`) — where it can lead, whether it is
a check-in, what it shows that is deeper than level 1, what it calms with, which texts it shows:

1. Every step is reachable from the first step and every path ends in an ``end`` step
   (no dead ends, no loops without a way out, no jump to a step that does not exist).
2. No prompt that can be above level 1 and no role-play is reachable from the first step
   without passing a check-in.
3. Every check-in and role-play has one or two calming exercises (its own ``calm`` or the
   script's) that exist, calm the body and ask for no writing. The engine's built-in loop
   (calm, re-rate, at most two rounds, then a gentle close) then always re-rates and exits.
4. Every text compiles in the sandbox, names only known variables and, rendered with long
   sample values, fits Telegram's limits; conditions are valid and name known variables.
5. Strict YAML is the loader's proof (:mod:`bot.script._yaml`); its findings are reported as
   they are.

Every finding is located at the most precise ``file:line:col`` known and carries a stable code.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from bot import render
from bot.check._advice import Advice
from bot.check._graph import StepGraph
from bot.check._report import Report, did_you_mean, item_mark, own, route, shown_path
from bot.check._texts import DEFINE_IT, SourceLines, TextCheck
from bot.crisis import load_rules
from bot.engine.steps import kind_of
from bot.engine.steps.prompt import reach_of
from bot.intents import load_intents
from bot.script import _model as m
from bot.script._expr import ExpressionError, parse_condition
from bot.script._findings import Finding, ScriptError
from bot.script._load import LoadedScript, load_script, script_files, script_folders
from bot.script._yaml import Mark

__all__ = ["check_paths", "check_script"]


def check_script(script: LoadedScript, renderer: render.Renderer) -> list[Finding]:
    """Check a loaded script: the safety proofs, its texts and advice for its author.

    Args:
        script: A script that loaded without errors.
        renderer: The renderer whose sandbox compiles and renders the texts.

    Returns:
        Errors and warnings sorted by file, line and column.
    """
    return _sorted(_Checker(script, renderer).run())


def check_paths(paths: Sequence[Path], *, prompts_dir: Path | None = None) -> list[Finding]:
    """Load and check script files; never raises.

    Args:
        paths: Script files, and directories whose ``*.yaml`` files are checked.
        prompts_dir: Also check the system texts, crisis rules and intent book of every
            locale in this directory.

    Returns:
        Every finding of every file (loading problems included), sorted by file, line and
        column; an unexpected failure becomes an ``internal`` error at the file's 1:1.
    """
    renderer = render.Renderer({})
    folders = script_folders(paths)
    findings: list[Finding] = []
    for path in paths:
        findings += _guarded(str(path), functools.partial(_check_path, path, folders, renderer))
    if prompts_dir is not None:
        for locale in _locales(prompts_dir):
            findings += _guarded(str(prompts_dir / locale / "texts.yaml"),
                                 functools.partial(render.check_texts, prompts_dir, locale))
            rules = prompts_dir / locale / "crisis_rules.yaml"
            findings += _guarded(str(rules), functools.partial(_check_book, load_rules, rules))
            intents = prompts_dir / locale / "intents.yaml"
            findings += _guarded(str(intents),
                                 functools.partial(_check_book, load_intents, intents))
    return _sorted(findings)


def _check_book(load: Callable[[Path], object], path: Path) -> list[Finding]:
    """Load a locale's crisis rule book or intent book; its mistakes as findings."""
    try:
        load(path)
    except ScriptError as exc:
        return list(exc.findings)
    return []


# --- files ------------------------------------------------------------------------------------


def _check_path(
    path: Path, folders: Sequence[Path], renderer: render.Renderer
) -> list[Finding]:
    """Check a script file, or every ``*.yaml`` file of a directory."""
    return [finding for file in script_files([path])
            for finding in _check_file(file, folders, renderer)]


def _locales(prompts_dir: Path) -> list[str]:
    """The locales with a texts file in ``prompts_dir`` (``en`` if there are none)."""
    try:
        found = sorted(p.name for p in prompts_dir.iterdir() if (p / "texts.yaml").is_file())
    except OSError:
        found = []
    return found or ["en"]


def _check_file(file: Path, folders: Sequence[Path], renderer: render.Renderer) -> list[Finding]:
    def load_and_check() -> list[Finding]:
        try:
            script = load_script(file, folders=folders)
        except ScriptError as exc:
            return exc.findings
        return check_script(script, renderer)

    return _guarded(str(file), load_and_check)


def _guarded(file: str, work: Callable[[], list[Finding]]) -> list[Finding]:
    """Run ``work``; an unexpected exception becomes an ``internal`` finding at ``file:1:1``."""
    try:
        return work()
    except Exception as exc:  # the boundary: a checker bug must never traceback the CLI
        message = (f"internal error while checking this file ({type(exc).__name__}: {exc}); "
                   "please report it")
        return [Finding.error(Mark(file, 1, 1), "internal", message)]


def _sorted(findings: list[Finding]) -> list[Finding]:
    unique = dict.fromkeys(findings)
    return sorted(unique, key=lambda f: (f.file, f.line, f.col, f.code, f.message))


# --- the checker ------------------------------------------------------------------------------


class _Checker:
    """Checks one script; :meth:`run` returns its findings."""

    def __init__(self, script: LoadedScript, renderer: render.Renderer) -> None:
        self.script = script
        self.meta = script.meta
        self.steps = script.steps
        self.renderer = renderer
        self.graph = StepGraph(script)
        self.lines = SourceLines()
        self.report = Report()
        self.texts = TextCheck(script, renderer, self.graph, self.lines, self.report)
        self.known = self.texts.known
        self._min_level = _min_level_by_topic(script.prompts.values())

    def run(self) -> list[Finding]:
        """Run every check and return the findings."""
        self._check_default_calm()
        self._check_prompts()
        self._check_exercises()
        self.texts.run()
        if self.steps:
            for step_id, step in self.steps.items():
                self._check_step(step_id, step)
            self._check_flow()
            self._check_checkin_first()
        Advice(self.script, self.graph, self.report).run()
        return self.report.findings

    # -- reporting --

    def _error(self, mark: Mark, code: str, message: str) -> None:
        self.report.error(mark, code, message)

    def _warn(self, mark: Mark, code: str, message: str) -> None:
        self.report.warn(mark, code, message)

    def _item_mark(self, kind: str, item_id: str, *sub: str | int) -> Mark:
        return item_mark(self.script, kind, item_id, *sub)

    def _own(self, kind: str, item_id: str) -> bool:
        return own(self.script, kind, item_id)

    # -- proof 3: de-escalation --

    def _check_default_calm(self) -> None:
        for index, exercise_id in enumerate(self.meta.calm):
            self._check_calm(exercise_id, self.script.source.mark_for(("script", "calm", index)))

    def _check_step_calm(self, step_id: str, step: m.Step) -> None:
        kind = kind_of(step)
        own = kind.calm(step)
        if own is None:
            return
        for index, exercise_id in enumerate(own):
            self._check_calm(exercise_id, self.graph.mark(step_id, kind.key, "calm", index))
        if not own and not self.meta.calm:
            self._error(self.graph.mark(step_id, kind.key, key=True), "no-calm", (
                f"{kind.noun} `{step_id}` has nothing to calm with: add `calm: [paced-breathing]` "
                "(a breathing, grounding, relaxation or self-talk exercise) to it, or a default "
                "`calm:` under `script:`. With high distress the bot runs these exercises, asks "
                "for a new rating after each (at most two rounds) and otherwise closes the "
                "session gently."))

    def _check_calm(self, exercise_id: str, mark: Mark) -> None:
        exercise = self.script.exercises.get(exercise_id)
        if exercise is None:
            hint = did_you_mean(exercise_id, self.script.exercises)
            self._error(mark, "calm-unknown", f"there is no exercise `{exercise_id}`{hint} "
                        "(define it under `exercises:` or include a file that does)")
        elif not exercise.kind.calming:
            self._error(mark, "calm-not-calming", (
                f"`{exercise_id}` is a {exercise.kind.value} exercise, which does not calm the "
                "body; use a breathing, grounding, relaxation or self-talk exercise to "
                "de-escalate"))
        elif any(page.write is not None for page in exercise.pages):
            self._error(mark, "calm-not-calming", (
                f"`{exercise_id}` asks the client to write; an exercise that calms high distress "
                "must not ask for free text (use `say` pages only)"))

    # -- prompts, exercises and their levels --

    def _check_prompts(self) -> None:
        for prompt_id, prompt in self.script.prompts.items():
            lowest = self._min_level.get(prompt.topic, prompt.level)
            if prompt.smaller is None and lowest >= prompt.level:
                self._error(self._item_mark("prompt", prompt_id), "no-smaller-step", (
                    f"prompt `{prompt_id}` has no smaller step: add `smaller:` with a gentler "
                    f"wording, or a lower-level prompt on topic `{prompt.topic}`"))
            if prompt.level > self.meta.level and self._own("prompt", prompt_id):
                self._error(self._item_mark("prompt", prompt_id, "level"), "level-above-script",
                            f"prompt `{prompt_id}` is level {prompt.level}, but this script goes "
                            f"no deeper than level {self.meta.level} (`script.level`)")

    def _check_exercises(self) -> None:
        for exercise_id, exercise in self.script.exercises.items():
            for index, page in enumerate(exercise.pages):
                if page.button is not None:
                    mark = self._item_mark("exercise", exercise_id, "pages", index, "button")
                    self._check_label(page.button, mark)

    def _check_label(self, label: str, mark: Mark) -> None:
        if len(label) > render.MAX_LABEL_LENGTH:
            self._error(mark, "button-too-long", f"this button label has {len(label)} "
                        f"characters; keep it to {render.MAX_LABEL_LENGTH} so it fits on a phone")

    def _prompt_reach(self, spec: m.PromptStep) -> int:
        """The deepest level a prompt step can ever show (the engine never exceeds the script)."""
        return reach_of(spec, self.script)

    # -- proof 4: texts --

    def _check_step(self, step_id: str, step: m.Step) -> None:
        self._check_step_calm(step_id, step)
        if step.roleplay is not None:
            self._check_turns(step_id, step.roleplay)
        elif step.prompt is not None:
            self._check_prompt_step(step_id, step.prompt)
        elif step.ask is not None:
            self._check_ask(step_id, step.ask)
        elif step.branch is not None:
            self._check_branch(step_id, step.branch)
        elif step.exercise is not None and step.exercise not in self.script.exercises:
            hint = did_you_mean(step.exercise, self.script.exercises)
            self._error(self.graph.mark(step_id, "exercise"), "unknown-exercise",
                        f"there is no exercise `{step.exercise}`{hint} (define it under "
                        "`exercises:` or include a file that does)")

    def _check_turns(self, step_id: str, play: m.RolePlay) -> None:
        for index, turn in enumerate(play.turns):
            mark = self.graph.mark(step_id, "roleplay", "turns", index)
            if turn.smaller is None and turn.example is None:
                self._error(mark, "no-smaller-step", "this turn has no smaller step: add "
                            "`smaller:` (a gentler line) or `example:` (a modelled answer)")
            elif turn.example is None:
                self._warn(mark, "turn-without-example", "this turn has no `example:`; a "
                           "modelled answer at the same level helps the client go deeper")
            if turn.level > self.meta.level:
                self._error(self.graph.mark(step_id, "roleplay", "turns", index, "level"),
                            "level-above-script", f"this turn is level {turn.level}, but this "
                            f"script goes no deeper than level {self.meta.level} "
                            "(`script.level`)")
            if turn.hostile and index == 0:
                self._error(
                    self.graph.mark(step_id, "roleplay", "turns", index, "hostile", key=True),
                    "hostile-first-turn", "a scene may not open with a hostile line; start "
                    "with a gentler turn so the client can settle into the role-play")

    def _check_prompt_step(self, step_id: str, spec: m.PromptStep) -> None:
        if isinstance(spec.level, int) and spec.level > self.meta.level:
            self._error(self.graph.mark(step_id, "prompt", "level"), "level-above-script",
                        f"this step asks for level {spec.level}, but this script goes no "
                        f"deeper than level {self.meta.level} (`script.level`)")
        reach = self._prompt_reach(spec)
        lowest = min(self._min_level.values(), default=reach + 1) if spec.topic is None else (
            self._min_level.get(spec.topic, reach + 1))
        if lowest > reach:
            topic = f" on topic `{spec.topic}`" if spec.topic else ""
            self._error(self.graph.mark(step_id, "prompt"), "prompt-pool-empty",
                        f"this step can never show a prompt: there is no prompt{topic} at "
                        f"level {reach} or below; add one or change `topic`/`level`")

    def _check_ask(self, step_id: str, ask: m.Ask) -> None:
        for index, choice in enumerate(ask.choices):
            self._check_label(choice.label, self.graph.mark(step_id, "ask", "choices", index,
                                                            "label"))

    def _check_branch(self, step_id: str, arms: list[m.BranchArm]) -> None:
        for index, arm in enumerate(arms):
            if arm.if_ is None:
                continue
            mark = self.graph.mark(step_id, "branch", index, "if")
            try:
                condition = parse_condition(arm.if_)
            except ExpressionError as exc:
                self._error(self.lines.in_value(mark, exc.col - 1), "condition-invalid",
                            f"this condition cannot be used: {exc}")
                continue
            for name in sorted(condition.names - self.known):
                hint = did_you_mean(name, self.known)
                self._error(mark, "condition-unknown-variable",
                            f"unknown variable `{name}`{hint}. {DEFINE_IT}")

    # -- proof 1: every step reachable, every path ends --

    def _check_flow(self) -> None:
        graph = self.graph
        settled = self._check_targets()
        reached = graph.search(self.script.first_step)
        for step_id in graph.order:
            if step_id not in reached:
                self._error(graph.mark(step_id), "unreachable-step", (
                    f"step `{step_id}` is never reached from the first step "
                    f"(`{self.script.first_step}`): point a `next`, `goto` or branch at it, "
                    "or remove it"))
        ends = {step_id for step_id, step in self.steps.items() if step.end is not None}
        if not ends:
            self._error(self.script.source.mark_for(("steps",), key=True), "missing-end",
                        "this script has no `end` step; add one (e.g. `- id: closing` with "
                        "`end: …`) where the session should close")
            return
        for step_id in reached:
            if any(edge.target is None for edge in graph.edges(step_id)):
                settled.add(step_id)
                self._error(graph.mark(step_id), "dead-end", (
                    f"the script runs out after step `{step_id}`: nothing follows it. Add "
                    "`next:` pointing to a step, or put an `end` step after it"))
        self._check_way_out(reached, ends | settled)

    def _check_targets(self) -> set[str]:
        """Report jumps to steps that do not exist; return the steps that have one."""
        graph, faulty = self.graph, set()
        for step_id in graph.order:
            for edge in graph.edges(step_id):
                if edge.target is not None and edge.target not in self.steps:
                    faulty.add(step_id)
                    hint = did_you_mean(edge.target, self.steps)
                    self._error(graph.mark(step_id, *edge.path), "unknown-step",
                                f"there is no step `{edge.target}`{hint}")
        return faulty

    def _check_way_out(self, reached: Collection[str], finished: set[str]) -> None:
        """Report where a path enters steps from which no `end` can be reached."""
        before = self.graph.predecessors()
        can_finish = set(finished)
        queue = deque(finished)
        while queue:
            for source in before[queue.popleft()]:
                if source not in can_finish:
                    can_finish.add(source)
                    queue.append(source)
        trapped = {step_id for step_id in reached if step_id not in can_finish}
        for step_id in (s for s in reached if s in trapped):  # in the order they are reached
            entered = step_id == self.script.first_step or any(
                source in reached and source in can_finish for source in before[step_id])
            if entered:
                loop = shown_path(self._loop_from(step_id, trapped))
                self._error(self.graph.mark(step_id), "dead-end", (
                    f"no path from step `{step_id}` reaches an `end`: it only goes {loop}. "
                    "Add a choice, branch or `next` that leads to an `end` step"))

    def _loop_from(self, start: str, trapped: set[str]) -> list[str]:
        path, here = [start], start
        while len(path) < 8:
            here = next(s for s in self.graph.successors(here) if s in trapped)
            path.append(here)
            if path.count(here) > 1:
                break
        return path

    # -- proof 2: a check-in before anything deeper than level 1 --

    def _check_checkin_first(self) -> None:
        parents = self.graph.search(self.script.first_step,
                                    lambda step_id: kind_of(self.steps[step_id]).checks_in)
        for step_id in parents:
            step = self.steps[step_id]
            deeper = kind_of(step).deeper(step, self.script)
            if deeper is not None:
                self._error(self.graph.mark(step_id), deeper.code, (
                    f"{deeper.subject} can be reached without a check-in "
                    f"({route(parents, step_id)}); put a `checkin` step before it on every "
                    f"path{deeper.note}"))


def _min_level_by_topic(prompts: Collection[m.Prompt]) -> dict[str, int]:
    lowest: dict[str, int] = {}
    for prompt in prompts:
        lowest[prompt.topic] = min(lowest.get(prompt.topic, prompt.level), prompt.level)
    return lowest
