"""``roleplay``: a practice scene, line by line, with check-ins due within it and after it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.engine._buttons import (
    Example,
    Hint,
    PartnerSafe,
    PartnerUnsure,
    Pause,
    Press,
    SaidIt,
    Skip,
    Smaller,
    StartScene,
)
from bot.engine._context import Choice
from bot.engine._state import Frame, Part
from bot.engine._terms import MAX_TEXT
from bot.engine.steps._base import CheckInSpec, Deeper, Drawing, StepKind, TextAt
from bot.script import LoadedScript
from bot.script import _model as m

if TYPE_CHECKING:
    from bot.engine.steps._run import Run


class RolePlay(StepKind):
    """The bot plays a character; the client answers each line, then steps out and rates."""

    key = "roleplay"
    noun = "role-play"
    parts = (Part.SCREEN, Part.READY, Part.TURN, Part.RATING, Part.RECHECK, Part.CALM)

    # -- what the checker and the drawings read -----------------------------------------------
    def texts(self, step: m.Step) -> Iterable[TextAt]:
        play = _play(step)
        yield ("roleplay", "scene"), play.scene, True
        yield ("roleplay", "debrief"), play.debrief, False
        for index, turn in enumerate(play.turns):
            for field in ("says", "hint", "example", "smaller"):
                yield ("roleplay", "turns", index, field), getattr(turn, field), True

    def calm(self, step: m.Step) -> list[str] | None:
        return _play(step).calm

    def deeper(self, step: m.Step, script: LoadedScript) -> Deeper | None:
        return Deeper("no-checkin-before-roleplay", f"role-play `{step.id}`")

    def drawing(self, step: m.Step, script: LoadedScript) -> Drawing:
        play = _play(step)
        levels = sorted({turn.level for turn in play.turns})
        shown = f"level {levels[0]}" + (f"–{levels[-1]}" if len(levels) > 1 else "")
        return Drawing(f"role-play · {play.character} · {shown}", "box", f"level{levels[-1]}")

    # -- how the engine runs it ---------------------------------------------------------------
    def begin(self, run: Run, step: m.Step) -> None:
        ctx = run.ctx
        if ctx.crisis_hold():  # no role-play until the hold lifts
            ctx.log("roleplay_left_out", step=step.id, reason="crisis-hold")
            ctx.say("roleplay.held")
            run.enter_after(step.id)
            return
        ctx.log("roleplay_started", script=ctx.session.script, step=step.id)
        if _play(step).relationship is m.Relationship.PARTNER:  # safe with them? asked first
            ctx.session.frame.part = Part.SCREEN
            run.show()
            return
        self._open(run, step)

    def _open(self, run: Run, step: m.Step) -> None:
        """The scene's frame: at a gentle pace with "Start", else with its first line."""
        ctx = run.ctx
        if ctx.state.pace.waits_before_scenes:  # the frame, then a moment before the scene
            ctx.session.frame.part = Part.READY
            run.show()
            return
        self._frame(run, _play(step))
        self._start(run, step)

    def _frame(self, run: Run, play: m.RolePlay, *rows: list[Choice]) -> None:
        ctx = run.ctx
        scene = ctx.script_text(play.scene, character=play.character)
        ctx.say("roleplay.frame", list(rows), character=play.character, scene=scene)

    def _start(self, run: Run, step: m.Step) -> None:
        """The scene's first playable line (or, if none is left, its end)."""
        play = _play(step)
        run.ctx.session.frame.part = Part.TURN
        if self._seek_turn(run, play):
            run.show()
        else:
            self._scene_over(run, play)

    def fits(self, script: LoadedScript, step: m.Step, frame: Frame) -> bool:
        if frame.part is Part.TURN:
            return frame.turn < len(_play(step).turns)
        return frame.part in self.parts

    def show(self, run: Run, step: m.Step) -> None:
        ctx = run.ctx
        play = _play(step)
        frame = ctx.session.frame
        if frame.part is Part.SCREEN:
            ctx.say("roleplay.partner_screen", [[ctx.button("partner_safe", PartnerSafe())],
                                                [ctx.button("partner_unsure", PartnerUnsure())]])
            return
        if frame.part is Part.READY:
            self._frame(run, play, [ctx.button("start", StartScene())],
                        [ctx.button("pause", Pause())])
            return
        turn = play.turns[frame.turn]
        line = turn.smaller if frame.smaller and turn.smaller else turn.says
        text = ctx.system("roleplay.line", character=play.character,
                          line=ctx.script_text(line, character=play.character))
        helpers: list[Choice] = []
        if turn.hint:
            helpers.append(ctx.button("hint", Hint()))
        if turn.example:
            helpers.append(ctx.button("example", Example()))
        ctx.send(text, [[ctx.button("said_it", SaidIt())], *([helpers] if helpers else []),
                        [ctx.button("smaller", Smaller()), ctx.button("skip", Skip())],
                        [ctx.button("pause", Pause())]])

    def on_button(self, run: Run, step: m.Step, press: Press) -> None:
        part = run.ctx.session.frame.part
        match press:
            case PartnerSafe() if part is Part.SCREEN:
                run.ctx.log("abuse_screen", step=step.id, answer="safe")
                self._open(run, step)
            case PartnerUnsure() if part is Part.SCREEN:
                self._not_safe_with_partner(run, step)
            case StartScene() if part is Part.READY:
                self._start(run, step)
            case SaidIt() if part is Part.TURN:
                self._answered(run, step, response="said-it")
            case Hint() | Example() if part is Part.TURN:
                self._helper(run, step, press)
            case _:
                run.show()

    def text_limit(self, run: Run, step: m.Step) -> int | None:
        return MAX_TEXT if run.ctx.session.frame.part is Part.TURN else None

    def on_text(self, run: Run, step: m.Step, text: str) -> None:
        run.keep(text)
        self._answered(run, step, response="text")

    def skip(self, run: Run, step: m.Step) -> bool:
        frame = run.ctx.session.frame
        if frame.part is not Part.TURN:
            return False
        run.ctx.log("pacing", choice="skip", step=frame.step, turn=frame.turn)
        self._advance(run, _play(step))
        return True

    def smaller(self, run: Run, step: m.Step) -> bool:
        ctx = run.ctx
        frame = ctx.session.frame
        if frame.part is not Part.TURN:
            return False
        turn = _play(step).turns[frame.turn]
        if turn.smaller and not frame.smaller:
            frame.smaller = True
            return True
        if turn.example:
            ctx.say("roleplay.example", example=ctx.script_text(turn.example))
            return True
        return False

    # -- check-ins within the scene -----------------------------------------------------------
    def checkin_of(self, run: Run, step: m.Step) -> CheckInSpec:
        return CheckInSpec(calm=run.ctx.script.calm_for(_play(step).calm))

    def before_calming(self, run: Run, step: m.Step) -> None:
        play = _play(step)
        frame = run.ctx.session.frame
        if frame.turn < self._turn_limit(run, play):
            run.ctx.say("roleplay.step_out", character=play.character)
            frame.turn = len(play.turns)

    def before_cap(self, run: Run, step: m.Step) -> None:
        play = _play(step)
        frame = run.ctx.session.frame
        if frame.part in (Part.SCREEN, Part.READY):  # not yet in the role
            frame.turn = len(play.turns)
        elif frame.turn < len(play.turns):
            run.ctx.say("roleplay.step_out", character=play.character)
            frame.turn = len(play.turns)  # out of the role: not stepped out of twice

    def in_role(self, run: Run, step: m.Step) -> bool:
        frame = run.ctx.session.frame
        return (frame.part not in (Part.SCREEN, Part.READY)
                and frame.turn < self._turn_limit(run, _play(step)))

    def role(self, run: Run, step: m.Step) -> str | None:
        play = _play(step)
        frame = run.ctx.session.frame
        in_scene = frame.part not in (Part.SCREEN, Part.READY) and frame.turn < len(play.turns)
        return play.character if in_scene and not (frame.closing or frame.calming) else None

    def reframe(self, run: Run, step: m.Step) -> None:
        play = _play(step)
        ctx = run.ctx
        ctx.say("roleplay.reframe", character=play.character,
                scene=ctx.script_text(play.scene, character=play.character))

    def after_checkin(self, run: Run, step: m.Step) -> None:
        ctx = run.ctx
        play = _play(step)
        frame = ctx.session.frame
        frame.turns_since_checkin = 0
        if frame.turn >= self._turn_limit(run, play) or not self._seek_turn(run, play):
            if play.debrief:
                ctx.send(ctx.script_text(play.debrief))
            run.enter_after(step.id)
            return
        frame.part = Part.TURN
        run.show()

    def _not_safe_with_partner(self, run: Run, step: m.Step) -> None:
        """Not safe, or not sure, with a partner: the partner-abuse lines, then a gentle end."""
        ctx = run.ctx
        ctx.log("abuse_screen", step=step.id, answer="not-safe-or-unsure")
        lines = ctx.lines()
        ctx.say_first("roleplay.partner_unsafe", groups=lines.groups(("partner_abuse",)),
                      emergency=lines.emergency)
        run.end_session(completed=False, reason="abuse-screen")

    # -- turns --------------------------------------------------------------------------------
    def _turn_limit(self, run: Run, play: m.RolePlay) -> int:
        return min(len(play.turns), run.ctx.state.contract.roleplay_turns)

    def _seek_turn(self, run: Run, play: m.RolePlay) -> bool:
        """Move to the first playable turn from the current one; False if none is left."""
        ctx = run.ctx
        frame = ctx.session.frame
        level = ctx.effective_level()
        while frame.turn < self._turn_limit(run, play):
            turn = play.turns[frame.turn]
            if turn.level <= level:
                frame.smaller = False
                return True
            if turn.smaller:
                frame.smaller = True
                return True
            ctx.log("turn_left_out", step=frame.step, turn=frame.turn, level=turn.level)
            frame.turn += 1
        return False

    def _answered(self, run: Run, step: m.Step, response: str) -> None:
        ctx = run.ctx
        play = _play(step)
        frame = ctx.session.frame
        turn = play.turns[frame.turn]
        ctx.log("roleplay_turn", step=frame.step, turn=frame.turn, level=turn.level,
                smaller=frame.smaller, response=response)
        frame.turns_since_checkin += 1
        ctx.session.shared = True
        due = turn.hostile or frame.turns_since_checkin >= checkin_every(run, play)
        self._advance(run, play, checkin=due)

    def _advance(self, run: Run, play: m.RolePlay, *, checkin: bool = False) -> None:
        frame = run.ctx.session.frame
        frame.turn += 1
        if frame.turn >= self._turn_limit(run, play) or not self._seek_turn(run, play):
            self._scene_over(run, play)
            return
        if checkin:
            frame.part = Part.RATING
        run.show()

    def _scene_over(self, run: Run, play: m.RolePlay) -> None:
        """Step out of the role, then the check-in that always closes a scene."""
        frame = run.ctx.session.frame
        frame.turn = len(play.turns)
        run.ctx.say("roleplay.step_out", character=play.character)
        frame.part = Part.RATING
        run.show()

    def _helper(self, run: Run, step: m.Step, press: Hint | Example) -> None:
        ctx = run.ctx
        frame = ctx.session.frame
        turn = _play(step).turns[frame.turn]
        hint = isinstance(press, Hint)
        if hint and turn.hint:
            ctx.say("roleplay.hint", hint=ctx.script_text(turn.hint))
        elif not hint and turn.example:
            ctx.say("roleplay.example", example=ctx.script_text(turn.example))
        ctx.log("roleplay_help", step=frame.step, turn=frame.turn,
                help="hint" if hint else "example")
        run.show()


def checkin_every(run: Run, play: m.RolePlay) -> int:
    """Role-play turns between check-ins: the contract's, or the scene's if it asks more often."""
    most = run.ctx.state.contract.checkin_every_turns
    return most if play.checkin_every is None else min(play.checkin_every, most)


def _play(step: m.Step) -> m.RolePlay:
    assert step.roleplay is not None
    return step.roleplay
