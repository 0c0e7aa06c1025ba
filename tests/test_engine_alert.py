"""The consented alert to the therapist (issue 11 §8), through the real engine.

A client who opted in gets one alert out per window after a risk signal (crisis language,
``/sos``) or a "not safe"/"not sure" answer, and the answer to the safety question after it
as one follow-up; later signals in the window are ledgered as not sent. An alert says who,
when, the kind and the answer, never the client's words. Without the opt-in nothing is sent,
and the "not safe" response says the therapist is not notified automatically.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.app import Loaded
from bot.engine import CrisisQuestion, Opt, SettingsQuestion
from tests.support.engine_driver import CRISIS, Driver, engine_with


def _client(loaded: Loaded, *, alert: bool) -> Driver:
    d = Driver.new(loaded.engine, client_id="tg:4242")
    d.consent(alert=alert)
    return d


def _alerts(d: Driver) -> list[str]:
    return [a.text for out in d.history for a in out.alerts]


def test_without_the_opt_in_nothing_is_sent_and_the_client_is_told(loaded: Loaded) -> None:
    d = _client(loaded, alert=False)
    d.text(CRISIS)
    assert not d.last.alerts
    assert "therapist has been sent" not in d.texts()[0]
    d.press(d.label("not_safe"))
    assert not d.last.alerts and not d.rows("therapist_alert")
    assert "Your therapist is not notified automatically" in d.texts()[0]
    d.command("sos")
    assert _alerts(d) == []


def test_crisis_language_alerts_once_without_the_words(loaded: Loaded) -> None:
    d = _client(loaded, alert=True)
    words = "I have pills saved up and tonight I will take them all"
    d.text(words)
    [text] = [a.text for a in d.last.alerts]
    assert "tg:4242" in text and "Ada" in text and "suicide or self-harm" in text
    assert "plan, means or time" in text  # imminent
    for word in ("pills", "tonight", "take them"):
        assert word not in text
    assert "your therapist has been sent a short alert" in d.texts()[0]
    [row] = d.rows("therapist_alert")
    assert row == {"signal": "crisis", "kinds": ["suicide"], "sent": True, "follow_up": False}
    assert words not in json.dumps(d.rows("therapist_alert"))
    # the answer to the safety question follows once, even inside the window
    d.press(d.label("not_safe"))
    [follow] = [a.text for a in d.last.alerts]
    assert "follow-up" in follow and "NOT safe" in follow
    assert "therapist has been sent a short alert with your answer" in d.texts()[0]
    assert d.rows("therapist_alert")[-1] == {"signal": "not_safe", "kinds": ["suicide"],
                                             "sent": True, "follow_up": True}


def test_a_safe_answer_is_only_ever_a_follow_up(loaded: Loaded) -> None:
    d = _client(loaded, alert=True)
    d.command("sos")
    assert "they used /sos" in d.last.alerts[0].text
    d.press(d.label("safe"))
    [follow] = d.last.alerts
    assert "yes, safe" in follow.text
    d.advance(hours=2)
    d.command("sos")
    d.press(d.label("safe"))
    d.advance(hours=2)
    d.command("sos")
    assert len(d.last.alerts) == 1
    d.press(d.label("safe"))  # the follow-up of this /sos
    d.text("hello")
    # a "safe" with no alert before it sends nothing
    assert [r["signal"] for r in d.rows("therapist_alert")] == ["sos", "safe"] * 3


def test_signals_inside_the_window_are_ledgered_as_not_sent(loaded: Loaded) -> None:
    d = _client(loaded, alert=True)
    d.text(CRISIS)
    d.press(d.label("not_sure"))  # the follow-up
    d.advance(minutes=5)
    d.command("sos")
    assert not d.last.alerts
    assert d.rows("therapist_alert")[-1] == {"signal": "sos", "kinds": [], "sent": False,
                                             "reason": "rate-limit"}
    d.press(d.label("not_safe"))  # no follow-up owed: inside the window, not sent
    assert not d.last.alerts and d.rows("therapist_alert")[-1]["sent"] is False
    assert "therapist has been sent" not in d.texts()[0]
    assert "not notified automatically" not in d.texts()[0]
    d.advance(minutes=26)  # 31 minutes after the first alert: a new one may go
    d.text(CRISIS)
    assert len(d.last.alerts) == 1


def test_the_window_is_the_setting(loaded: Loaded) -> None:
    engine = engine_with(loaded.engine, alert_min=timedelta(minutes=5))
    d = Driver.new(engine, client_id="tg:4242")
    d.consent(alert=True)
    d.command("sos")
    d.press(d.label("safe"))
    d.advance(minutes=6)
    d.command("sos")
    assert len(d.last.alerts) == 1


def test_the_opt_in_changes_in_settings(loaded: Loaded) -> None:
    d = _client(loaded, alert=False)
    version = d.engine.resources.policy.consent_version
    d.command("settings")
    assert "Safety alert to your therapist: no" in d.texts()[0]
    d.press(d.label("change_alert"))
    assert d.state.has(Opt.ALERT_THERAPIST, version)
    assert d.state.pending == SettingsQuestion()
    assert "Safety alert to your therapist: yes" in d.texts()[0]
    assert d.rows("consent")[-1] == {"opt": "alert_therapist", "given": True,
                                     "version": version}
    d.press(d.label("close"))
    d.text(CRISIS)
    assert len(d.last.alerts) == 1
    d.press(d.label("safe"))
    d.command("settings")
    d.press(d.label("change_alert"))
    assert not d.state.has(Opt.ALERT_THERAPIST, version)
    d.press(d.label("close"))
    d.advance(hours=1)
    d.text(CRISIS)
    assert not d.last.alerts


@pytest.mark.parametrize("first", ["not_safe", "not_sure"])
def test_not_safe_after_sustained_distress_alerts(loaded: Loaded, first: str) -> None:
    """A safety question with no signal before it (distress that stayed high): "not safe" is
    the signal, and it alerts."""
    d = _client(loaded, alert=True)
    d.pick("first-steps")
    d.at("checkin-before", "rating")
    d.text("10")
    d.walk_until(lambda x: x.part == "recheck")
    d.text("10")
    d.walk_until(lambda x: x.part == "recheck")
    d.text("10")
    assert d.state.pending == CrisisQuestion()
    assert not _alerts(d)
    d.press(d.label(first))
    [alert] = d.last.alerts
    answer = "NOT safe" if first == "not_safe" else "not sure"
    assert "follow-up" not in alert.text and answer in alert.text



@pytest.mark.parametrize("minutes", [30, 120])
def test_the_consent_text_says_how_often_an_alert_may_go_from_the_setting(
        loaded: Loaded, minutes: int) -> None:
    """The opt-in's promise ("at most one alert every N minutes") is the setting's value."""
    d = Driver.new(engine_with(loaded.engine, alert_min=timedelta(minutes=minutes)))
    d.consent()  # the alert is the last opt-in: its text is in the history
    asked = [text for out in d.history for text in (m.text for m in out.messages)
             if "a short alert to your therapist" in text]
    assert asked and f"At most one alert is sent every {minutes} minutes" in asked[0]
