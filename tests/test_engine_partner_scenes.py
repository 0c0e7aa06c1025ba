"""Partner scenes ask about safety first: "I'm safe with my partner" plays the scene, "I'm not,
or I'm not sure" shows the partner-abuse lines (and the safety plan) and ends gently.

Real engine, real shipped scripts and texts.
"""

from __future__ import annotations

import pytest

from bot.app import Loaded
from bot.engine import SafetyPlan
from bot.script import _model as m
from tests.support.engine_driver import Driver

PARTNER_SCENES = {"asking-for-reassurance": "scene", "repairing-after-conflict": "scene"}
PLAN = SafetyPlan(warning_signs="not sleeping", internal_coping="walk the dog",
                  professionals="Dr Lee, 555-0100")


def _at_screen(d: Driver, script: str) -> None:
    d.consent()
    d.pick(script)
    d.walk_until(lambda x: x.part == "screen")
    assert d.step == PARTNER_SCENES[script]


def test_every_shipped_scene_with_a_partner_is_marked(loaded: Loaded) -> None:
    marked = {sid: step.id for sid, script in loaded.engine.resources.scripts.items()
              for step in script.steps.values()
              if step.roleplay is not None
              and step.roleplay.relationship is m.Relationship.PARTNER}
    assert marked == PARTNER_SCENES
    for script in loaded.engine.resources.scripts.values():
        for step in script.steps.values():
            if step.roleplay is not None and "partner" in step.roleplay.scene.lower():
                assert step.roleplay.relationship is m.Relationship.PARTNER, step.id


@pytest.mark.parametrize("script", PARTNER_SCENES)
def test_a_partner_scene_asks_before_its_frame(loaded: Loaded, script: str) -> None:
    d = Driver.new(loaded.engine)
    _at_screen(d, script)
    assert d.texts()[-1] == d.render("roleplay.partner_screen")
    assert "you don't feel safe with your partner" in d.texts()[-1]
    assert "this scene isn't the right practice" in d.texts()[-1]
    assert d.labels() == [d.label("partner_safe"), d.label("partner_unsure")]
    assert not any("Practice scene" in t for t in d.texts())  # the frame comes after
    d.press("ps")
    assert d.rows("abuse_screen") == [{"step": "scene", "answer": "safe"}]
    assert "<b>Practice scene</b>" in d.texts()[0]
    assert d.part in ("turn", "ready")


@pytest.mark.parametrize("script", PARTNER_SCENES)
def test_not_safe_or_not_sure_shows_the_partner_abuse_lines_and_ends_gently(
        loaded: Loaded, script: str) -> None:
    d = Driver.new(loaded.engine)
    d.state.safety_plan = PLAN  # as the service hands it in from the store
    _at_screen(d, script)
    d.press("pu")
    lines = loaded.engine.resources.policy.lines(d.state.settings.region)
    partner = lines.lines["partner_abuse"]
    # the plan is in the first message, right after the emergency number
    assert d.texts()[0] == d.render("roleplay.partner_unsafe",
                                    groups=lines.groups(("partner_abuse",)),
                                    emergency=lines.emergency, plan=d.plan_text())
    assert all(line.name in d.texts()[0] for line in partner)
    first = d.texts()[0]
    assert first.index(f"call {lines.emergency}") < first.index("walk the dog")
    assert d.state.session is None  # the exercise has ended, no scene line was shown
    assert not any("Practice scene" in t for t in d.texts())
    assert d.rows("abuse_screen") == [{"step": "scene", "answer": "not-safe-or-unsure"}]
    assert d.rows("session_ended")[-1]["reason"] == "abuse-screen"
    assert not any("walk the dog" in str(e.data) for e in d.all_ledger())  # never text
    assert not d.state.pending  # no level offer, no menu pushed


def test_a_friend_scene_asks_nothing_first(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    d.consent()
    d.pick("telling-a-friend")
    d.at("scene")
    assert d.part != "screen" and not d.rows("abuse_screen")


def test_the_screen_cannot_be_skipped_past_and_text_is_not_an_answer(loaded: Loaded) -> None:
    d = Driver.new(loaded.engine)
    _at_screen(d, "asking-for-reassurance")
    d.text("hmm")
    assert d.part == "screen" and d.texts()[-1] == d.render("roleplay.partner_screen")
    d.command("skip")
    assert d.part == "screen"
    d.command("pause")
    assert "stepping out of the role" not in d.texts()[0]  # not in the role yet
