"""The shipped English crisis rules meet the targets on every labelled file they were tuned on.

Targets (issue 8): explicit statements 100%; every kind at least 95% detected, with the labelled
kind among the detected kinds for at least 95%; false alarms on at most 2% of benign messages.
On the development corpus every category too. The two held-out files and the probes were used
for tuning (docs/safety.md, section 5), so they guard against regressions, not for
generalisation: that is measured only on a set nobody tuning the rules has read. Plus the
issue's own examples, one by one.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

import pytest

from bot.crisis import Detector, Kind, load_rules
from bot.crisis._evaluate import Case, Score, evaluate, read_cases

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prompts" / "en" / "crisis_rules.yaml"
CRISIS = ROOT / "tests" / "crisis"
CORPUS = CRISIS / "corpus_en.tsv"
#: Every labelled file the rules are tuned on.
TUNED = ["corpus_en.tsv", "holdout_en.tsv", "holdout2_en.tsv", "probes_en.tsv"]

RECALL = 0.95
RIGHT_KIND = 0.95
FALSE_ALARMS = 0.02


@lru_cache(maxsize=1)
def _detector() -> Detector:
    return Detector(load_rules(RULES))


@cache
def _scored(name: str = CORPUS.name) -> tuple[list[Case], Score]:
    cases = read_cases(CRISIS / name)
    return cases, evaluate(_detector(), cases)


def _listing(cases: list[Case]) -> str:
    return "\n".join(f"  line {c.line} ({c.kind}/{c.category}): {c.text}" for c in cases)


def _missed(score: Score, key: str) -> list[Case]:
    return [c for c in score.missed if key in (c.kind, f"category:{c.category}")]


@pytest.mark.parametrize("name", TUNED)
def test_explicit_statements_are_all_detected(name: str) -> None:
    _, score = _scored(name)
    assert score.recall("category:explicit") == 1.0, \
        f"{name}: explicit statements missed:\n" + _listing(_missed(score, "category:explicit"))


@pytest.mark.parametrize("category", ["passive", "plan_means", "farewell", "self_harm",
                                      "chat_spelling", "partner_abuse", "sexual_violence",
                                      "child_at_risk", "harm_to_others"])
def test_each_category_is_detected(category: str) -> None:
    _, score = _scored()
    key = f"category:{category}"
    assert score.total[key], f"no {category} rows in the corpus"
    assert score.recall(key) >= RECALL, (
        f"{category}: {score.recall(key):.1%} detected, missed:\n"
        + _listing(_missed(score, key)))


@pytest.mark.parametrize("name", TUNED)
@pytest.mark.parametrize("kind", [k.value for k in Kind])
def test_each_kind_is_detected_as_that_kind(kind: str, name: str) -> None:
    cases, score = _scored(name)
    assert score.total[kind], f"no {kind} rows in {name}"
    assert score.recall(kind) >= RECALL, (
        f"{name}, {kind}: {score.recall(kind):.1%} detected, missed:\n"
        + _listing(_missed(score, kind)))
    right = score.right_kind[kind] / score.total[kind]
    detector = _detector()
    wrong = [c for c in cases if c.kind == kind and detector.scan(c.text)
             and kind not in {k.value for k in detector.scan(c.text).kinds}]
    assert right >= RIGHT_KIND, (
        f"{name}, {kind}: the right kind for only {right:.1%}; detected as another kind:\n"
        + _listing(wrong))


@pytest.mark.parametrize("name", TUNED)
def test_false_alarms_are_rare(name: str) -> None:
    _, score = _scored(name)
    detector = _detector()
    assert score.false_alarm_rate <= FALSE_ALARMS, (
        f"{name}: false alarms on {score.false_alarm_rate:.1%} of benign messages:\n"
        + "\n".join(f"  line {c.line}: {c.text} (rules {', '.join(detector.scan(c.text).rules)})"
                    for c in score.false_alarms))


#: The issue's examples of risk that the old phrase list missed, with the kind each calls for.
RISK = [
    ("I have a plan to end it", Kind.SUICIDE),
    ("how many pills would it take to die", Kind.SUICIDE),
    ("I bought a rope today and I know what it's for", Kind.SUICIDE),
    ("I'm going to jump off the bridge after work", Kind.SUICIDE),
    ("I've written letters to my family for after I'm gone", Kind.SUICIDE),
    ("I'm giving away my things", Kind.SUICIDE),
    ("I can't do this anymore", Kind.SUICIDE),
    ("I won't be around much longer", Kind.SUICIDE),
    ("this is goodbye", Kind.SUICIDE),
    ("I'm such a burden to everyone", Kind.SUICIDE),
    ("I just want the pain to stop for good", Kind.SUICIDE),
    ("I don't see a future for myself", Kind.SUICIDE),
    ("nobody would even notice if I was gone", Kind.SUICIDE),
    ("I've been cutting again", Kind.SUICIDE),
    ("I burned my arm with a lighter", Kind.SUICIDE),
    ("I relapsed on sh", Kind.SUICIDE),
    ("I took a handful of extra pills last night", Kind.SUICIDE),
    ("slit my wrist", Kind.SUICIDE),
    ("i wnat to die", Kind.SUICIDE),
    ("suicidle", Kind.SUICIDE),
    ("kil myself", Kind.SUICIDE),
    ("k1ll myself", Kind.SUICIDE),
    ("want 2 die", Kind.SUICIDE),
    ("killmyself", Kind.SUICIDE),
    # a typo, not a join with a one-letter word inside ("exs i sting")
    ("i just want 2 stop exsisting", Kind.SUICIDE),
    # of joins as short, the one with fewer one-letter words ("end it all", not "end i tall")
    ("end\u2060it\u2060all tonight", Kind.SUICIDE),
    # Scots and Jamaican Patois spellings (the rule book's `chat`)
    ("sorry I couldnae stick it oot, ye were good tae me", Kind.SUICIDE),
    ("mi fraid fi go home, him buss mi lip last night", Kind.PARTNER_ABUSE),
    ("selfharming", Kind.SUICIDE),
    ("ki\u200bll myself", Kind.SUICIDE),
    ("k\u0456ll myself", Kind.SUICIDE),
    ("my partner hits me", Kind.PARTNER_ABUSE),
    ("my boyfriend choked me last night", Kind.PARTNER_ABUSE),
    ("he said he'll hurt me if I leave", Kind.PARTNER_ABUSE),
    ("my dad hurts my little sister", Kind.CHILD_AT_RISK),
    ("my partner forces me to have sex", Kind.SEXUAL_VIOLENCE),
    ("I'm not safe at home", Kind.PARTNER_ABUSE),
    ("I want to kill him", Kind.HARM_TO_OTHERS),
    ("I'm afraid I might hurt my baby", Kind.CHILD_AT_RISK),
    ("I don't want to live", Kind.SUICIDE),  # the negation is the risk
]

#: The issue's false alarms of the old phrase list, and the everyday idioms it names.
BENIGN = [
    "I cut myself shaving",
    "I hurt myself at the gym",
    "I'm running 5 kms tomorrow",
    "I ran 10 kms this morning",
    "I can't go on dates without panicking",
    "I'm done with life admin",
    "I'm killing it at work",
    "I'm dying to tell him",
    "I finally cut him off",
    "I shot him a text",
    "my battery died",
    "I keep dying on this level",
    "I don't want to die",  # negated on its own: not a risk statement
]


#: An overdose told after the act or as a wish not to wake (C-SSRS: actual attempt; ASQ 2),
#: with no word for pills or dying, beside the everyday sentences with the same words.
TOLD_AFTER_THE_ACT = [
    "I took the whole bottle an hour ago",
    "i already swallowed them",
    "i already took them all",
    "i swallowed them all",
    "I'm going to take the whole box tonight",
    "I don't plan on waking up tomorrow",
]
SAME_WORDS_EVERYDAY = [
    "I already took them, thanks for reminding me",
    "I already swallowed my pride",
    "the kids already took them all to school",
    "I took the whole box of biscuits to work",
    "I drank the whole bottle of water",
    "took the whole pack of cards home",
    "I don't plan on waking up early tomorrow",
    "I don't plan on waking up before noon on saturday",
]


#: Risks told without the usual words (rules rounds 11 to 15), and their everyday look-alikes.
RISK_WITHOUT_ITS_WORDS = [
    ("blade in hand rn", Kind.SUICIDE),
    ("I'm sitting in the bathroom with the razor, tell me something", Kind.SUICIDE),
    ("kms kms kms everything is shit", Kind.SUICIDE),
    ("i might kms lol after that run", Kind.SUICIDE),
    ("my notes are finished. goodnight forever", Kind.SUICIDE),
    ("I wouldn't mind if I just didn't wake up tomorrow", Kind.SUICIDE),
    ("I made an attempt in March that nobody knows about", Kind.SUICIDE),
    ("he punched a hole in the door next to my head", Kind.PARTNER_ABUSE),
    ("hiding in the wardrobe, he's searching the house for me", Kind.PARTNER_ABUSE),
    ("a guy online is blackmailing me with a photo", Kind.SEXUAL_VIOLENCE),
    ("the family upstairs lock their daughter in the cupboard", Kind.CHILD_AT_RISK),
    ("going round to Darren's tonight to finish him", Kind.HARM_TO_OTHERS),
    ("I burned my wrist with the iron on purpose", Kind.SUICIDE),
    ("it would be best if I died", Kind.SUICIDE),
    ("I want to stop everything", Kind.SUICIDE),
    ("i shook him. he's gone floppy", Kind.CHILD_AT_RISK),
    ("he's hitting the older one with his belt now", Kind.CHILD_AT_RISK),
    ("I asked him for a divorce and he said I'd leave in a box", Kind.PARTNER_ABUSE),
    ("the police left an hour ago and he's already texting that he's coming back",
     Kind.PARTNER_ABUSE),
    ("he flushed my contraceptive pills because he wants a baby", Kind.PARTNER_ABUSE),
    ("woke up with my jeans undone and I don't remember anything after the second drink",
     Kind.SEXUAL_VIOLENCE),
    ("it happened an hour ago at his flat and I can't stop shaking", Kind.SEXUAL_VIOLENCE),
    ("the bat's in the boot and I know which pub he drinks in on fridays", Kind.HARM_TO_OTHERS),
    ("I've been thinking about putting something in my flatmate's food", Kind.HARM_TO_OTHERS),
    # rules round 16 (train3, train4)
    ("ending it tonight, nobody try and stop me", Kind.SUICIDE),
    ("if the car had hit me on the crossing it would honestly have been a relief", Kind.SUICIDE),
    ("I'm just an extra mouth, they'd be better off", Kind.SUICIDE),
    ("the rope in the garage, I told my husband it's for the trailer", Kind.SUICIDE),
    ("I keep some of my tablets back every week from the chemist", Kind.SUICIDE),
    ("I drank a bit of the weed killer from the shed", Kind.SUICIDE),
    ("I punch the wall till my knuckles bleed, it's how I cope", Kind.SUICIDE),
    ("the house will be empty on saturday and I'm doing it", Kind.SUICIDE),
    ("Please don't let my son be the one to find me", Kind.SUICIDE),
    ("he pinned me to the floor in the argument last night", Kind.PARTNER_ABUSE),
    ("she says she'll tell my boss everything if I leave her", Kind.PARTNER_ABUSE),
    ("my ex posted the pics I sent him in a group chat", Kind.SEXUAL_VIOLENCE),
    ("a man on snapchat asks me to delete our chats, I'm 14", Kind.CHILD_AT_RISK),
    ("my stepdad makes my brother sleep in the shed when he's naughty", Kind.CHILD_AT_RISK),
    ("I'm outside his flat now with a hammer", Kind.HARM_TO_OTHERS),
    ("I wanted to slap my mum when she asked again, and yesterday I did", Kind.HARM_TO_OTHERS),
    ("if my dad finds this, my bank card pin is under the lamp", Kind.SUICIDE),
    ("I'm no good to anyone now, just something they have to wash and feed", Kind.SUICIDE),
    ("got a rope last week, it's in the wardrobe behind my coats", Kind.SUICIDE),
    ("cut again tonight and it's gaping", Kind.SUICIDE),
    ("my parents are away at half term, it is decided", Kind.SUICIDE),
    # rules round 17 (train5: answers typed inside the exercises)
    ("Sorry Alex, can't do the scene. I'm going to jump tonight", Kind.SUICIDE),
    ("the tablets are ready, I'm taking them once everyone is asleep", Kind.SUICIDE),
    ("5/10. took thirty of my paracetamol before this", Kind.SUICIDE),
    ("Priya, there's no next time. Everything you'll need is in the letter", Kind.SUICIDE),
    ("What helps me cope after a shift is burning my arm", Kind.SUICIDE),
    ("he threw a plate at the baby when she wouldn't stop crying", Kind.CHILD_AT_RISK),
    ("the man in the flat below keeps groping me on the stairs", Kind.SEXUAL_VIOLENCE),
    ("if they put me in a care home I'll take her with me, and I mean it", Kind.HARM_TO_OTHERS),
    ("much calmer since I decided on Friday. nothing left to sort", Kind.SUICIDE),
]
LOOK_ALIKES = [
    "I want to run more kms this year",
    "I'm chopping onions right now with the new knife",
    "i keep spare razor blades in the bathroom cabinet",
    "goodbye forever, stupid old phone",
    "i made my peace with my ex and i'm ready to move on",
    "hot yoga nearly finished me off",
    "my phone went dark and stayed dark",
    "I made an attempt at the exam nobody knows about",
    "I stopped making plans for the weekend because I'll be here at work",
    "my dad punched a hole in the wall when he lost the match",
    "hiding in the wardrobe, my son is looking for me, hide and seek",
    "going round to finish him at FIFA tonight",
    "I'm not allowed my own card until I'm 16",
    "he smashed my phone by accident",
    "the doctor touched my chest with the stethoscope",
    "my mum locked the kids outside in the garden to play",
    "I nearly hit my son with the ball",
    "I want to make him pay for the dinner",
    "he'd kill me if he knew I told you about the surprise party",
    "burned my wrist on the oven tray making lasagne",
    "my best friend died of cancer and I feel guilty when I enjoy things",
    "I've sorted all my passwords in a manager app finally",
    "I want to stop apologising for everything",
    "my daughter burned her hand on the iron, we ran it under cold water",
    "my chess coach is going to teach me a lesson tomorrow",
    "found the airtag I put on my keys",
    "my baby keeps touching my face when she feeds",
    "it happened an hour ago, a car crash on the ring road, I can't stop shaking",
    "the bat's in the boot for cricket practice, I know which pub the team drinks in",
    # rules round 16 (train3, train4)
    "I'm ending it with him tonight, I've had enough of his lies",
    "coach made us do suicides at the end of training",
    "if I fell off the ladder my wife would kill me for not holding it lol",
    "I hope I don't come back sunburnt from Spain",
    "I keep some tablets back for the holiday in case of a strike at the chemist",
    "my dog drank some of the bleach by accident, we're at the vet",
    "I scratch my arm raw when my eczema flares",
    "the house will be empty on saturday so we're having the party",
    "she says she'll tell my mum if I go to the party",
    "my sister pulled my hair when we were kids",
    "going round to dad's with a hammer to put up the shelves",
    "last time I'll ever sit a maths exam",
    "if my mum finds this funny I'll be amazed",
    "got my hair cut again today, much shorter",
    "bought a rope for the climbing wall, it's in my bag",
    "I'm going to jump in the pool tonight after the session",
    "the new episode was so good i died",
    "my cuts from the garden are healing well",
    "What helps me cope after a shift is cutting the grass",
    "this is the last time we'll talk about it before the holiday",
    "much calmer since I decided to quit that job",
    "I felt like I'd been hit by a bus after the night shift",
]


#: Plans and farewells told only through their details, and the same details
#: in everyday sentences.
DETAILS_OF_A_PLAN = [
    "I've been saving my quetiapine instead of taking it. 42 in the tin now.",
    "parked in the woods, windows up, engine running. just sitting here typing this",
    "tried the door to the roof at work. the stairs aren't alarmed and no one goes up after six",
    "I practised with the belt on the door last night, just to see if it would hold",
    "the urge is so bad right now and the sharpener's in my bag",
    "bathroom. razor. door locked.",
    "finally got the gun. private sale, no questions. it's in the wardrobe",
    "paid the rent three months ahead and set up the direct debits so nobody's left with a mess",
]
DETAILS_OF_A_DAY = [
    "my therapist and i wrote a safety plan just in case, i'm okay",
    "i put my scarf around my neck and went out in the snow",
    "im done with dating apps for a while",
    "i'm at the end of my rope with this printer",
    "picked up the antibiotics and counted the tablets, three a day",
    "the train was delayed again, it doesn't stop at our station on sundays",
    "the mechanic fixed the exhaust and the engine is running fine",
    "i sliced my thumb on the mandoline and had to get steri strips at the pharmacy",
    "I scrubbed the pan till it's raw",
    "the urge to smoke is so bad right now",
]

#: Everyday phrases that raised false alarms on the spent sealed files (rules round of
#: 2026-12-07), beside risk statements that share their words.
IDIOMS = [
    "I shot myself in the foot by telling my boss I was free on Saturday",
    "finally pulled the trigger on the new sofa, it comes in a week",
    "I've been overdosing on Christmas films since November lol",
    "he's ghosting me so I'm letting the whole thing die a natural death",
    "my tablets make me sleep like the dead, so I take them at nine",
    "I felt a bit nervous when my daughter's boyfriend came to dinner",
    "I'm going to break up with him gently on Saturday",
    "I've been researching hanging baskets for the front of the house",
    "went to the bereaved by suicide group and talked about my brother",
    "when you said that I felt my chest tighten, then it eased",
    "the tablets the doctor gave me make me sleepy but they work",
]
#: The PHQ-9's ninth question (better off dead, or hurting oneself) answered by its number:
#: "not at all" is a negative screen, any other answer a positive one (Kroenke et al. 2001).
SCREENING_NEGATIVE = [
    "thoughts that you would be better off dead: not at all",
    "on the phq the better off dead question I ticked not at all",
    "question 9 on the form: not at all",
    "the answer to question 9 on my maths homework is yes",
]
SCREENING_POSITIVE = [
    ("the answer to question 9 on the form is yes, nearly every day", Kind.SUICIDE),
    ("question 9 on the phq: more than half the days", Kind.SUICIDE),
    ("ticked a 2 for item 9 on the mood questionnaire", Kind.SUICIDE),
]
IDIOM_WORDS_AT_RISK = [
    ("I'm going to shoot myself", Kind.SUICIDE),
    ("I want to overdose tonight", Kind.SUICIDE),
    ("I've been researching hanging, how long it takes", Kind.SUICIDE),
    ("my boyfriend bit me and I'm bleeding", Kind.PARTNER_ABUSE),
    ("he grabbed my chest on the bus", Kind.SEXUAL_VIOLENCE),
    ("he takes my money and he controls my phone", Kind.PARTNER_ABUSE),
]


def _explained(text: str) -> str:
    return "\n".join(_detector().explain(text))


@pytest.mark.parametrize(("text", "kind"), RISK + RISK_WITHOUT_ITS_WORDS + IDIOM_WORDS_AT_RISK
                         + SCREENING_POSITIVE)
def test_risk_examples_are_detected_as_their_kind(text: str, kind: Kind) -> None:
    assert kind in _detector().scan(text).kinds, _explained(text)


@pytest.mark.parametrize("text", TOLD_AFTER_THE_ACT + DETAILS_OF_A_PLAN)
def test_an_act_or_plan_told_without_its_words_is_an_imminent_risk(text: str) -> None:
    detection = _detector().scan(text)
    assert Kind.SUICIDE in detection.kinds and detection.imminent, _explained(text)


@pytest.mark.parametrize("text", BENIGN + SAME_WORDS_EVERYDAY + LOOK_ALIKES + DETAILS_OF_A_DAY
                         + IDIOMS + SCREENING_NEGATIVE)
def test_everyday_examples_raise_no_alarm(text: str) -> None:
    assert not _detector().scan(text), _explained(text)


@pytest.mark.parametrize("path", sorted(CRISIS.glob("*.tsv")), ids=lambda p: p.name)
def test_every_labelled_file_reads(path: Path) -> None:
    """Sealed files too are checked for form (never scored here): each reads without a
    finding and holds risk and benign rows."""
    cases = read_cases(path)
    kinds = {case.kind for case in cases}
    assert "none" in kinds and len(kinds) == 6, (path.name, kinds)


# The speller's repairs depend on the rule book's words (a new short rule word once turned
# "exsisting" into "exs i sting"), so the known readings are pinned here: a rule change that
# alters one shows up as this test failing, not as a quiet miss.
@pytest.mark.parametrize(("typed", "read"), [
    ("suicidle", "suicide"),
    ("wnat", "want"),
    ("k1ll", "kill"),
    ("selfharming", "self harming"),
    ("killmyself", "kill myself"),
    ("iwanttodie", "i want to die"),
    ("enditall", "end it all"),
    ("exsisting", "existing"),
    ("wan2die", "wan to die"),
    ("sewerslide", "suicide"),
    ("diiie", "die"),
    ("thinkin", "thinking"),
    ("couldnae", "could not"),
])
def test_the_speller_reads_known_spellings(typed: str, read: str) -> None:
    assert " ".join(w.text for w in _detector().speller.words(typed)) == read
