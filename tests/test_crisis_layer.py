"""The context layer: a match does not count when the message says the person is not at risk.

Each reading (negation, recovery, third party, each kind of frame) is shown cancelling a match
on a small real rule book, with the reason ``explain`` gives, and next to it the cases where
the match must stay (when in doubt, show support): a hedged negation, a negator that is the
rule's own word, a relapse, the speaker as the subject, the client's own words in a story, a
frame of another kind. Then the shipped English rule book on sentences of both sorts, and the
loader's errors at ``file:line:col``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import crisis_detector
from bot.crisis import Detector, Kind, load_rules
from bot.script import ScriptError

ROOT = Path(__file__).resolve().parent.parent

BOOK = """\
locale: en
lang: en
within: 3
chat:
  dont: do not
  im: i am
  "he'll": he will
concepts:
  WANT: [want, wanted, wish]
  DIE: [die, dead]
  KILL: [kill]
  REFLEXIVE: [myself, himself, herself]
  CUT: [cut, cutting]
  PILLS: [pills, tablets]
  PARTNER: [he, my partner]
  HIT: [hit, hits]
  ME_: [i, me, my, myself]
  NEGATOR: [not, never, no plans]
  BRIDGE: [i, have, has, am, ever, once, to, going, wanted, tried]
  HEDGE: [sure, stop, want to live]
  UNDONE: [more than, yet]
  RECOVERY: [years clean, doing well, in recovery]
  RELAPSE: [again, last night]
  PEOPLE: [friend, cousin, she, he]
  STORY: [film, book]
  IF_EVER: [if i ever]
  HELP: [call, tell]
  ASKED: [asked if]
  SAID_NO: [said no]
layer:
  first_person: [ME_]
  clause_breaks: [but]
  negation:
    negators: [NEGATOR]
    bridge: [BRIDGE]
    hedges: [HEDGE]
    undone_by: [UNDONE]
  recovery:
    cues: [RECOVERY]
    relapse: [RELAPSE]
    kinds: [suicide]
  third_party:
    people: [PEOPLE]
    speaker: [i]
    kinds: [suicide]
  frames:
    - id: story
      why: told as a story
      around: [STORY]
      not_self: true
    - id: plan-for-if-ever
      why: a plan for if it ever happens
      before: [IF_EVER]
      after: [HELP]
    - id: asked-and-said-no
      why: a question answered no
      before: [ASKED]
      after: [SAID_NO]
      kinds: [suicide]
rules:
  - id: want-to-die
    kind: suicide
    why: wants to die
    match: [WANT, to, DIE]
    within: 1
  - id: kill-self
    kind: suicide
    why: kill oneself
    match: [KILL, REFLEXIVE]
    within: 1
  - id: cutting
    kind: suicide
    why: self-harm
    match: [CUT]
  - id: pills-saved
    kind: suicide
    why: a means saved up (a plan now)
    match: [PILLS, saved]
    within: 1
    imminent: true
  - id: not-want-to-live
    kind: suicide
    why: does not want to live (the negation is the risk)
    match: [not, want, to, live]
    within: 0
  - id: partner-hits-me
    kind: partner_abuse
    why: violence by a partner
    match: [PARTNER, HIT, me]
    within: 2
"""


@pytest.fixture
def detector(tmp_path: Path) -> Detector:
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK, encoding="utf-8")
    return Detector(load_rules(path))


def cancel_reasons(detector: Detector, text: str) -> str:
    return "\n".join(line for line in detector.explain(text) if line.startswith("not counted"))


# -- each reading cancels, and says why -----------------------------------------------------
@pytest.mark.parametrize(("text", "reason"), [
    ("i have never wanted to die", "a negation (`never`) governs it"),
    ("i am not going to kill myself", "a negation (`not`) governs it"),
    ("i have never once tried to kill myself", "a negation (`never`) governs it"),
    ("no plans to kill myself", "a negation (`no plans`) governs it"),
    ("he never hits me", "a negation (`never`) governs it"),  # between the match's words
    ("i used to cut, now i am doing well", "a recovery (`doing well`)"),
    ("two years clean from cutting", "a recovery (`years clean`)"),
    ("my cousin tried to kill himself", "someone else (`cousin`) is the subject"),
    ("my friend said she wants to die", "someone else (`she`) is the subject"),
    ("a film about wanting to die", "told as a story: `film` (layer frame `story`"),
    ("if i ever want to die i will call my sister",
     "a plan for if it ever happens: `if i ever … call` (layer frame `plan-for-if-ever`"),
    ("the nurse asked if i wanted to die and i said no",
     "a question answered no: `asked if … said no` (layer frame `asked-and-said-no`"),
])
def test_each_reading_cancels_a_match_and_explain_says_why(
    detector: Detector, text: str, reason: str
) -> None:
    assert not detector.scan(text), "\n".join(detector.explain(text))
    reasons = cancel_reasons(detector, text)
    assert reason in reasons, reasons
    assert "crisis_rules.yaml:" in reasons  # where the layer is, to edit it
    assert detector.explain(text)[-1] == "no rule matched: no crisis response"


# -- and each has the cases where the match stays --------------------------------------------
@pytest.mark.parametrize(("text", "why"), [
    ("i am not sure i want to die", "a hedge right after the negator"),
    ("he will not stop he hits me", "a hedge: not stopping is no negation"),
    ("i do not want to live", "the negator is the rule's own word"),
    ("i have never wanted to die more than now", "a word after the match undoes it"),
    ("he has not hit me yet", "a word after the match undoes it"),
    ("i never told anyone i want to die", "words that are no bridge end the negation's reach"),
    ("not today. i want to die", "the negation is in another clause"),
    ("years clean but i want to die", "a clause break after the recovery"),
    ("years clean from cutting and i cut again last night", "a relapse"),
    ("i cut, not doing well", "a negated recovery cue is shame, not a recovery"),
    ("i am doing well, i have the pills saved", "a recovery does not undo a plan or means now"),
    ("i called my friend and i want to die", "the speaker is the subject"),
    ("my friend told me i want to kill myself", "the match speaks of the client"),
    ("the film made me want to kill myself", "the client's own words inside a story"),
    ("i have been cutting and the book helps", "the speaker right before it in a story"),
    ("if i ever see him i want to die", "a frame needs both of its parts"),
    ("he hits me, my cousin says", "third parties are read for suicide only"),
    ("i want to die", "no reading at all"),
    ("i noted i want to die", "a stem of 'noted' is no negator"),
    ("a book about my cutting", "a first-person word right before the match in a story"),
])
def test_a_match_stays_when_in_doubt(detector: Detector, text: str, why: str) -> None:
    assert detector.scan(text), f"{why}:\n" + "\n".join(detector.explain(text))


def test_a_present_risk_anywhere_in_the_message_wins(detector: Detector) -> None:
    text = "i have never wanted to die, but last week i started cutting"
    detection = detector.scan(text)
    assert detection.rules == ("cutting",), "\n".join(detector.explain(text))
    assert "a negation (`never`)" in cancel_reasons(detector, text)


def test_a_frame_applies_only_to_its_kinds(tmp_path: Path) -> None:
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK, encoding="utf-8")
    detector = Detector(load_rules(path))
    assert not detector.scan("they asked if i wanted to die and i said no")
    assert detector.scan("they asked if he hits me and i said no").kinds == (
        Kind.PARTNER_ABUSE,)


def test_without_a_layer_nothing_is_read_into_a_match(tmp_path: Path) -> None:
    path = tmp_path / "crisis_rules.yaml"
    start, end = BOOK.index("layer:\n"), BOOK.index("rules:\n")
    path.write_text(BOOK[:start] + BOOK[end:], encoding="utf-8")
    detector = Detector(load_rules(path))
    assert detector.scan("i have never wanted to die").rules == ("want-to-die",)
    assert detector.scan("my cousin tried to kill himself")


# -- the shipped English rule book -----------------------------------------------------------
@pytest.fixture(scope="module")
def shipped() -> Detector:
    return crisis_detector(ROOT / "prompts", "en")


@pytest.mark.parametrize("text", [
    "i'm not suicidal, i'm just tired of my job",
    "i would never hurt my children",
    "my partner has never hit me",
    "18 months clean from cutting and really proud of it",
    "i used to self harm but i'm in a good place now",
    "my brother used to want to die, he's doing well now",
    "the song is about a man who wants to die",
    "my sister self harms and i'm worried about her",
    "i'm writing an essay about suicide prevention",
    "if i ever feel like hurting myself again i'll call my therapist",
    "my doctor asked if i'd thought about suicide and i said no",
    "i'm a barrister and i spent the day on a rape trial",
    "i'm a solicitor and i spent the day on a sexual assault case",
    "my friend was raped years ago and only told me last month",
    "my flatmate had an abusive boyfriend at uni, we helped her move out",
    "i used to self harm in my teens, these days the scars are just part of my story",
    "2 years clean from cutting today! want to tell sam",
    "i was assaulted a long time ago, i've done a lot of therapy on it",
    "it's not that i want to end it, i just want to stop feeling so anxious",
])
def test_the_shipped_layer_hears_not_at_risk(shipped: Detector, text: str) -> None:
    assert not shipped.scan(text), "\n".join(shipped.explain(text))
    assert "layer" in cancel_reasons(shipped, text)


@pytest.mark.parametrize(("text", "kind"), [
    ("i'm not ok i want to die", Kind.SUICIDE),
    ("i don't want to live anymore", Kind.SUICIDE),
    ("i can't stop thinking about killing myself", Kind.SUICIDE),
    ("i don't think i'll be here next year", Kind.SUICIDE),
    ("i've never wanted to die more than i do now", Kind.SUICIDE),
    ("i was clean for a year but i cut again last night", Kind.SUICIDE),
    ("my therapist thinks i'm doing better but i still want to die", Kind.SUICIDE),
    ("my dad said i should just kill myself", Kind.SUICIDE),
    ("he doesn't let me see my friends", Kind.PARTNER_ABUSE),
    ("he hasn't hit me yet but he says he will", Kind.PARTNER_ABUSE),
    ("he wouldn't stop when i told him no", Kind.SEXUAL_VIOLENCE),
    ("i'm not safe at home", Kind.PARTNER_ABUSE),
    ("i'm a nurse and i've been cutting myself again", Kind.SUICIDE),
    ("as a paramedic i went to a suicide call on my shift", Kind.SUICIDE),
    ("i'm a social worker and i want to kill myself", Kind.SUICIDE),
    ("i'm a teacher and a pupil told me her dad hits her", Kind.CHILD_AT_RISK),
    ("the thing i've never told anyone is that my ex forced himself on me two years ago",
     Kind.SEXUAL_VIOLENCE),
    ("my boyfriend hit me years ago", Kind.PARTNER_ABUSE),
    ("i used to cut my arms so now i do my stomach where nobody looks", Kind.SUICIDE),
    ("i used to self harm and lately i've started again", Kind.SUICIDE),
    ("2 years clean and i cut today", Kind.SUICIDE),
    ("i've wanted to be dead since i was fourteen and it never fully went away", Kind.SUICIDE),
    ("i was raped years ago and the flashbacks are back", Kind.SEXUAL_VIOLENCE),
    ("i left my toddler home alone for the evening", Kind.CHILD_AT_RISK),
    # a `not_near` context that is one of the match's own words is no context
    ("kms", Kind.SUICIDE),
    ("i am ending things tonight", Kind.SUICIDE),
    ("i have noted the timings of the trains at the level crossing", Kind.SUICIDE),
    ("i keep fantasising about my own suicide when the lecture hall goes quiet", Kind.SUICIDE),
    ("my family would be free of it if i wasn't around", Kind.SUICIDE),
    ("my legs go numb when someone stands behind me, since the assault in the car park",
     Kind.SEXUAL_VIOLENCE),
])
def test_the_shipped_layer_keeps_risk(shipped: Detector, text: str, kind: Kind) -> None:
    assert kind in shipped.scan(text).kinds, "\n".join(shipped.explain(text))


# -- the loader ------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "message"), [
    ("    negators: [NEGATOR]", "    negators: [NEGATORS]", "unknown concept `NEGATORS`"),
    ("    kinds: [suicide]\n  third_party", "    kinds: [sucide]\n  third_party",
     "must be a list of kinds"),
    ("  recovery:", "  recover:", "unknown layer key `recover`"),
    ("    relapse: [RELAPSE]", "    relapses: [RELAPSE]", "unknown key `relapses`"),
    ("      why: told as a story\n", "", "every frame needs `why`"),
    ("      around: [STORY]\n", "", "a frame needs `before`, `after` or `around`"),
    ("      not_self: true", "      not_self: sometimes", "`not_self` must be true or false"),
])
def test_a_bad_layer_is_reported_at_its_place(tmp_path: Path, old: str, new: str,
                                              message: str) -> None:
    assert old in BOOK
    path = tmp_path / "crisis_rules.yaml"
    path.write_text(BOOK.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ScriptError) as raised:
        load_rules(path)
    text = str(raised.value)
    assert message in text, text
    assert "crisis_rules.yaml:" in text and text.split("crisis_rules.yaml:")[1][0].isdigit()
