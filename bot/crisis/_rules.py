"""The rule book: concepts and the rules that combine them, loaded from a locale's YAML.

A therapist edits ``prompts/<locale>/crisis_rules.yaml``; this module turns it into checked,
immutable rules or reports every mistake as ``file:line:col: message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bot.script import Finding, LoadedYaml, ScriptError, Severity, load_yaml


class Kind(StrEnum):
    """What a risk signal is about; each kind has its own lines and wording."""

    SUICIDE = "suicide"  #: suicidal thoughts, plans or self-harm
    PARTNER_ABUSE = "partner_abuse"
    SEXUAL_VIOLENCE = "sexual_violence"
    CHILD_AT_RISK = "child_at_risk"
    HARM_TO_OTHERS = "harm_to_others"


#: The order kinds are shown in when one message matches several (most urgent lines first).
KIND_ORDER = (Kind.SUICIDE, Kind.CHILD_AT_RISK, Kind.PARTNER_ABUSE, Kind.SEXUAL_VIOLENCE,
              Kind.HARM_TO_OTHERS)

_CONCEPT = re.compile(r"[A-Z][A-Z0-9_]*")
_WORD = re.compile(r"[a-z0-9]+")
_SPELLING = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")  # a chat spelling may keep apostrophes
_PHRASE = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")  # a literal part: a word or a phrase
_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_MAX_WITHIN = 12
_MAX_ANY_ORDER = 4  # parts of an `any_order` pattern: at most 24 orders to try


@dataclass(frozen=True, slots=True)
class Pattern:
    """Parts that must appear in order, each within ``within`` words of the one before.

    Attributes:
        id: A stable name, shown by ``rehearse crisis explain`` and kept in the ledger.
        parts: Concept names (``KILL``) or literal words and phrases (``home``, ``right now``).
        within: At most this many other words between two consecutive parts.
        where: ``file:line:col`` of the pattern in the rule book.
        any_order: The parts may appear in any order (each still within ``within`` words of
            the one before it in the message): concepts that co-occur, however the sentence
            is built ("a weight dragging everyone down" and "everyone is dragged down by me").
    """

    id: str
    parts: tuple[str, ...]
    within: int
    where: str
    any_order: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern that means risk of one kind.

    Attributes:
        pattern: What must be present.
        kind: What the match is about.
        why: The explanation in plain words.
        imminent: The pattern itself speaks of a plan, means or a time.
        not_after: Parts (a negation) that cancel the match right before its first part.
        not_near: Parts (an accident, a sport) that cancel the match close to it.
        not_inside: Parts (a negation) that cancel the match when they stand between its
            first and last words ("he never hits me").
        near: Parts of which one must stand close to the match (pills near "take them
            all"), when the pattern alone is too common to mean risk; empty: no condition.
    """

    pattern: Pattern
    kind: Kind
    why: str
    imminent: bool = False
    not_after: tuple[str, ...] = ()
    not_near: tuple[str, ...] = ()
    not_inside: tuple[str, ...] = ()
    near: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Frame:
    """A way of telling that puts a match outside the client's present (a film, a plan made
    in advance, a screening question answered no): the match does not count inside it.

    Attributes:
        id: A stable name, shown by ``rehearse crisis explain``.
        why: What the frame means, in plain words.
        before: Parts of which one must start before the match in its clause.
        after: Parts of which one must stand after the match (anywhere later in the message).
        around: Parts of which one must stand in the match's clause, before or after it.
        not_self: The frame does not apply when the match's own words speak of the client
            (``first_person``) or the speaker stands right before it: "in the film he kills
            himself" is a story, "the film made me want to kill myself" and "i self harm and
            wrote an essay on it" are not.
        kinds: The kinds it applies to.
        where: ``file:line:col`` of the frame in the rule book.
    """

    id: str
    why: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    around: tuple[str, ...]
    not_self: bool
    kinds: frozenset[Kind]
    where: str


@dataclass(frozen=True, slots=True)
class Layer:
    """The context layer: general readings that cancel a match of any rule when the message
    says the person is *not* at risk now. When in doubt, a match stays a match.

    Attributes:
        first_person: Parts that speak of the client (``i``, ``me``, ``myself``).
        clause_breaks: Words that start a new clause like a sentence mark does ("but").
        negators: Parts that negate what follows ("never", "not").
        bridge: Words that may stand between a negator and the match it negates ("i have
            never *once tried to* kill myself"); any other word ends the negation's reach.
        hedges: Words right after a negator that make the negation no negation ("not *sure*
            i want to live", "he won't *stop* hitting me"): the match stays.
        undone_by: Words just after the match that undo a negation ("never wanted to die
            *more than now*", "hasn't hit me *yet*"): the match stays.
        negation_kinds: The kinds the negation reading applies to.
        recovery: Parts that say a risk is over ("two years clean", "in a good place now").
        relapse: Parts that say it is back ("again", "last night"): anywhere in the message,
            they undo every recovery reading; so does a clause break after the recovery.
        recovery_kinds: The kinds the recovery reading applies to.
        people: Words for someone else as the subject ("my friend", "she").
        speaker: The speaker as a subject ("i"): before the match, the person is not the
            subject ("i called my brother to say goodbye").
        reports: Words right after the speaker that report what someone else does, so the
            person after them is the subject again ("i am worried my friend is cutting").
        third_party_kinds: The kinds the third-party reading applies to.
        frames: The other ways of telling (films, plans for "if i ever", questions answered no).
        where: ``file:line:col`` of the layer in the rule book.
    """

    first_person: tuple[str, ...] = ()
    clause_breaks: tuple[str, ...] = ()
    negators: tuple[str, ...] = ()
    bridge: tuple[str, ...] = ()
    hedges: tuple[str, ...] = ()
    undone_by: tuple[str, ...] = ()
    negation_kinds: frozenset[Kind] = frozenset()
    recovery: tuple[str, ...] = ()
    relapse: tuple[str, ...] = ()
    recovery_kinds: frozenset[Kind] = frozenset()
    people: tuple[str, ...] = ()
    speaker: tuple[str, ...] = ()
    reports: tuple[str, ...] = ()
    third_party_kinds: frozenset[Kind] = frozenset()
    frames: tuple[Frame, ...] = ()
    where: str = ""

    def parts(self) -> tuple[str, ...]:
        """Every part the layer names."""
        return (*self.first_person, *self.clause_breaks, *self.negators, *self.bridge,
                *self.hedges, *self.undone_by, *self.recovery, *self.relapse, *self.people,
                *self.speaker, *self.reports,
                *(p for f in self.frames for p in (*f.before, *f.after, *f.around)))


@dataclass(frozen=True)
class RuleBook:
    """Everything the detector knows for one locale.

    Attributes:
        file: Where it was loaded from.
        lang: The simplemma language code for lemmas.
        within: The default ``within`` of rules.
        concepts: Each concept's entries; an entry is one or more words.
        chat: Chat spellings to the words they stand for.
        glue: Short words allowed as parts of words run together.
        rules: The risk rules.
        harmless: Everyday expressions whose words no rule may use ("killing it").
        imminent_when: Concepts that make a suicide match imminent anywhere in the message.
        negations: Parts that, right before a ``not_near`` context, make it no context ("it is
            not for camping").
        negation_window: How many words before a match a ``not_after`` part may stand.
        near_window: How many words around a match a ``not_near`` part may stand.
        context_window: How many words around a match a ``near`` part may stand.
        layer: The context layer (negation, recovery, third parties, frames) every rule
            passes through.
    """

    file: str
    lang: str
    within: int
    concepts: dict[str, tuple[tuple[str, ...], ...]]
    chat: dict[str, tuple[str, ...]]
    glue: frozenset[str]
    rules: tuple[Rule, ...]
    harmless: tuple[Pattern, ...]
    imminent_when: tuple[str, ...]
    negations: tuple[str, ...] = ()
    negation_window: int = 3
    near_window: int = 5
    context_window: int = 8
    layer: Layer = field(default_factory=Layer)

    def phrases(self) -> frozenset[str]:
        """Every literal part (a word or several) a rule, condition or expression names."""
        parts = [p for r in self.rules
                 for p in (*r.pattern.parts, *r.not_after, *r.not_near, *r.not_inside, *r.near)]
        parts += [p for pattern in self.harmless for p in pattern.parts]
        parts += self.imminent_when
        parts += self.negations
        parts += self.layer.parts()
        return frozenset(p for p in parts if not _CONCEPT.fullmatch(p))

    def vocabulary(self) -> frozenset[str]:
        """Every word a concept, rule, condition or harmless expression names."""
        words = {w for entries in self.concepts.values() for entry in entries for w in entry}
        words.update(w for phrase in self.phrases() for w in phrase.split())
        return frozenset(words)


def load_rules(path: Path, *, display_name: str | None = None) -> RuleBook:
    """Load and check a rule book.

    Raises:
        ScriptError: With every problem found, each at ``file:line:col``.
    """
    loaded = load_yaml(path, display_name=display_name)
    return _Reader(loaded).book()


class _Reader:
    """Turns the loaded YAML into a :class:`RuleBook`, collecting findings."""

    def __init__(self, loaded: LoadedYaml) -> None:
        self.loaded = loaded
        self.file = loaded.file
        self.findings: list[Finding] = []

    def book(self) -> RuleBook:
        data = self.loaded.data
        if not isinstance(data, dict):
            self._error((), "the rule book must be a mapping with `concepts` and `rules`")
            raise ScriptError(self.findings)
        known = {"locale", "lang", "within", "concepts", "chat", "glue", "rules", "harmless",
                 "imminent_when", "negations", "negation_window", "near_window",
                 "context_window", "layer"}
        for key in data:
            if key not in known:
                self._error((key,), f"unknown key `{key}` (known: {', '.join(sorted(known))})",
                            key=True)
        within = self._int(data, ("within",), 3)
        concepts = self._concepts(data.get("concepts"))
        book = RuleBook(
            file=self.file,
            lang=str(data.get("lang", "en")),
            within=within,
            concepts=concepts,
            chat=self._chat(data.get("chat", {})),
            glue=frozenset(self._words(data.get("glue", []), ("glue",))),
            rules=tuple(self._rules(data.get("rules"), concepts, within)),
            harmless=tuple(self._harmless(data.get("harmless", []), concepts, within)),
            imminent_when=tuple(self._parts(data.get("imminent_when", []), ("imminent_when",),
                                            concepts)),
            negations=tuple(self._parts(data.get("negations", []), ("negations",), concepts)),
            negation_window=self._int(data, ("negation_window",), 3),
            near_window=self._int(data, ("near_window",), 5),
            context_window=self._int(data, ("context_window",), 8),
            layer=self._layer(data.get("layer"), concepts),
        )
        if self.findings:
            raise ScriptError(self.findings)
        return book

    # -- sections -----------------------------------------------------------------------------
    def _concepts(self, raw: object) -> dict[str, tuple[tuple[str, ...], ...]]:
        if not isinstance(raw, dict) or not raw:
            self._error(("concepts",), "`concepts` must map NAMES to lists of words")
            return {}
        concepts: dict[str, tuple[tuple[str, ...], ...]] = {}
        for name, entries in raw.items():
            if not _CONCEPT.fullmatch(name):
                self._error(("concepts", name), f"concept name `{name}` must be UPPER_CASE",
                            key=True)
            if not isinstance(entries, list) or not entries:
                self._error(("concepts", name), f"concept `{name}` needs a list of words")
                continue
            parsed = []
            for i, entry in enumerate(entries):
                words = tuple(str(entry).split()) if isinstance(entry, str) else ()
                if not words or not all(_WORD.fullmatch(w) for w in words):
                    self._error(("concepts", name, i),
                                f"`{entry}` must be lower-case words (letters and digits) "
                                "as they are written after folding (no apostrophes)")
                    continue
                parsed.append(words)
            concepts[name] = tuple(parsed)
        return concepts

    def _chat(self, raw: object) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            self._error(("chat",), "`chat` must map a chat spelling to the words it means")
            return {}
        chat: dict[str, tuple[str, ...]] = {}
        for spelling, meaning in raw.items():
            words = tuple(str(meaning).split()) if isinstance(meaning, str) else ()
            if not isinstance(spelling, str) or not _SPELLING.fullmatch(spelling) or not words:
                self._error(("chat", spelling), f"`{spelling}: {meaning}` must map one "
                            "lower-case spelling to one or more words")
                continue
            chat[spelling] = words
        return chat

    def _rules(
        self, raw: object, concepts: dict[str, tuple[tuple[str, ...], ...]], within: int
    ) -> list[Rule]:
        if not isinstance(raw, list) or not raw:
            self._error(("rules",), "`rules` must be a list of rules")
            return []
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            path: tuple[str | int, ...] = ("rules", i)
            if not isinstance(item, dict):
                self._error(path, "a rule is a mapping with `id`, `kind`, `why` and `match`")
                continue
            allowed = {"id", "kind", "why", "match", "within", "any_order", "imminent",
                       "not_after", "not_near", "not_inside", "near"}
            for key in item:
                if key not in allowed:
                    self._error((*path, key), f"unknown rule key `{key}` "
                                f"(known: {', '.join(sorted(allowed))})", key=True)
            pattern = self._pattern(item, path, concepts, within, seen)
            kind = item.get("kind")
            if kind not in {k.value for k in Kind}:
                self._error((*path, "kind"), f"`kind` must be one of "
                            f"{', '.join(k.value for k in Kind)}")
                continue
            why = item.get("why")
            if not isinstance(why, str) or not why.strip():
                self._error((*path, "why"), "every rule needs `why`: the reason in plain words")
                continue
            imminent = item.get("imminent", False)
            if not isinstance(imminent, bool):
                self._error((*path, "imminent"), "`imminent` must be true or false")
                continue
            if pattern is None:
                continue
            rules.append(Rule(
                pattern=pattern, kind=Kind(kind), why=why.strip(), imminent=imminent,
                not_after=tuple(self._parts(item.get("not_after", []), (*path, "not_after"),
                                            concepts)),
                not_near=tuple(self._parts(item.get("not_near", []), (*path, "not_near"),
                                           concepts)),
                not_inside=tuple(self._parts(item.get("not_inside", []),
                                             (*path, "not_inside"), concepts)),
                near=tuple(self._parts(item.get("near", []), (*path, "near"), concepts)),
            ))
        return rules

    def _harmless(
        self, raw: object, concepts: dict[str, tuple[tuple[str, ...], ...]], within: int
    ) -> list[Pattern]:
        if not isinstance(raw, list):
            self._error(("harmless",), "`harmless` must be a list of expressions")
            return []
        found: list[Pattern] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            path: tuple[str | int, ...] = ("harmless", i)
            if not isinstance(item, dict):
                self._error(path, "a harmless expression is a mapping with `id` and `match`")
                continue
            for key in item:
                if key not in ("id", "match", "within"):
                    self._error((*path, key), f"unknown key `{key}` (known: id, match, within)",
                                key=True)
            pattern = self._pattern(item, path, concepts, within, seen)
            if pattern is not None:
                found.append(pattern)
        return found

    def _layer(self, raw: object, concepts: dict[str, tuple[tuple[str, ...], ...]]) -> Layer:
        if raw is None:
            return Layer()
        if not isinstance(raw, dict):
            self._error(("layer",), "`layer` must be a mapping (see the header of the file)")
            return Layer()
        sections: dict[str, tuple[str, ...]] = {
            "negation": ("negators", "bridge", "hedges", "undone_by", "kinds"),
            "recovery": ("cues", "relapse", "kinds"),
            "third_party": ("people", "speaker", "reports", "kinds"),
        }
        for key in raw:
            if key not in {"first_person", "clause_breaks", "frames", *sections}:
                self._error(("layer", key), f"unknown layer key `{key}` (known: clause_breaks, "
                            f"first_person, frames, {', '.join(sections)})", key=True)
        found: dict[str, dict[str, object]] = {}
        for name, keys in sections.items():
            section = raw.get(name, {})
            if not isinstance(section, dict):
                self._error(("layer", name), f"`layer.{name}` must be a mapping of "
                            f"{', '.join(keys)}")
                section = {}
            for key in section:
                if key not in keys:
                    self._error(("layer", name, key), f"unknown key `{key}` in `layer.{name}` "
                                f"(known: {', '.join(keys)})", key=True)
            found[name] = section

        def parts(name: str, key: str) -> tuple[str, ...]:
            return tuple(self._parts(found[name].get(key, []), ("layer", name, key), concepts))

        def kinds(name: str) -> frozenset[Kind]:
            return self._kinds(found[name].get("kinds", [k.value for k in Kind]),
                               ("layer", name, "kinds"))

        mark = self.loaded.mark_for(("layer",))
        return Layer(
            first_person=tuple(self._parts(raw.get("first_person", []),
                                           ("layer", "first_person"), concepts)),
            clause_breaks=tuple(self._parts(raw.get("clause_breaks", []),
                                            ("layer", "clause_breaks"), concepts)),
            negators=parts("negation", "negators"),
            bridge=parts("negation", "bridge"),
            hedges=parts("negation", "hedges"),
            undone_by=parts("negation", "undone_by"),
            negation_kinds=kinds("negation"),
            recovery=parts("recovery", "cues"),
            relapse=parts("recovery", "relapse"),
            recovery_kinds=kinds("recovery"),
            people=parts("third_party", "people"),
            speaker=parts("third_party", "speaker"),
            reports=parts("third_party", "reports"),
            third_party_kinds=kinds("third_party"),
            frames=tuple(self._frames(raw.get("frames", []), concepts)),
            where=f"{mark.file}:{mark.line}:{mark.col}",
        )

    def _frames(self, raw: object, concepts: dict[str, tuple[tuple[str, ...], ...]]
                ) -> list[Frame]:
        if not isinstance(raw, list):
            self._error(("layer", "frames"), "`layer.frames` must be a list of frames")
            return []
        frames: list[Frame] = []
        seen: set[str] = set()
        allowed = ("id", "why", "before", "after", "around", "not_self", "kinds")
        for i, item in enumerate(raw):
            path: tuple[str | int, ...] = ("layer", "frames", i)
            if not isinstance(item, dict):
                self._error(path, "a frame is a mapping with `id`, `why` and `before`, "
                            "`after` or `around`")
                continue
            for key in item:
                if key not in allowed:
                    self._error((*path, key), f"unknown frame key `{key}` "
                                f"(known: {', '.join(allowed)})", key=True)
            frame_id, why, not_self = item.get("id"), item.get("why"), item.get("not_self", False)
            if not isinstance(frame_id, str) or not _ID.fullmatch(frame_id) or frame_id in seen:
                self._error((*path, "id"), "`id` must be lower-case words joined by hyphens, "
                            "used once")
                continue
            seen.add(frame_id)
            if not isinstance(why, str) or not why.strip():
                self._error((*path, "why"), "every frame needs `why`: the reason in plain words")
                continue
            if not isinstance(not_self, bool):
                self._error((*path, "not_self"), "`not_self` must be true or false")
                continue
            before, after, around = (
                tuple(self._parts(item.get(k, []), (*path, k), concepts))
                for k in ("before", "after", "around"))
            if not (before or after or around):
                self._error(path, "a frame needs `before`, `after` or `around`")
                continue
            mark = self.loaded.mark_for(path)
            frames.append(Frame(
                id=frame_id, why=why.strip(), before=before, after=after, around=around,
                not_self=not_self,
                kinds=self._kinds(item.get("kinds", [k.value for k in Kind]), (*path, "kinds")),
                where=f"{mark.file}:{mark.line}:{mark.col}",
            ))
        return frames

    def _kinds(self, raw: object, path: tuple[str | int, ...]) -> frozenset[Kind]:
        values = {k.value for k in Kind}
        if not isinstance(raw, list) or not raw or not all(k in values for k in raw):
            self._error(path, f"must be a list of kinds: {', '.join(sorted(values))}")
            return frozenset()
        return frozenset(Kind(k) for k in raw)

    # -- pieces -------------------------------------------------------------------------------
    def _pattern(
        self,
        item: dict[str, object],
        path: tuple[str | int, ...],
        concepts: dict[str, tuple[tuple[str, ...], ...]],
        default_within: int,
        seen: set[str],
    ) -> Pattern | None:
        rule_id = item.get("id")
        if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
            self._error((*path, "id"), "`id` must be lower-case words joined by hyphens")
            return None
        if rule_id in seen:
            self._error((*path, "id"), f"`{rule_id}` is used twice")
            return None
        seen.add(rule_id)
        parts = self._parts(item.get("match"), (*path, "match"), concepts)
        if not parts:
            self._error((*path, "match"), "`match` must list one or more parts")
            return None
        within = self._int(item, (*path, "within"), default_within)
        any_order = item.get("any_order", False)
        if not isinstance(any_order, bool):
            self._error((*path, "any_order"), "`any_order` must be true or false")
            return None
        if any_order and len(parts) > _MAX_ANY_ORDER:
            self._error((*path, "match"), f"an `any_order` rule has at most {_MAX_ANY_ORDER} "
                        "parts")
            return None
        mark = self.loaded.mark_for(path)
        return Pattern(rule_id, tuple(parts), within, f"{mark.file}:{mark.line}:{mark.col}",
                       any_order)

    def _parts(
        self, raw: object, path: tuple[str | int, ...],
        concepts: dict[str, tuple[tuple[str, ...], ...]],
    ) -> list[str]:
        if not isinstance(raw, list):
            self._error(path, "must be a list of CONCEPTS or lower-case words")
            return []
        parts: list[str] = []
        for i, part in enumerate(raw):
            text = str(part)
            if _CONCEPT.fullmatch(text):
                if text not in concepts:
                    self._error((*path, i), f"unknown concept `{text}`")
                    continue
            elif not _PHRASE.fullmatch(text):
                self._error((*path, i), f"`{text}` must be a CONCEPT or lower-case words")
                continue
            parts.append(text)
        return parts

    def _words(self, raw: object, path: tuple[str | int, ...]) -> list[str]:
        if not isinstance(raw, list) or not all(
            isinstance(w, str) and _WORD.fullmatch(w) for w in raw
        ):
            self._error(path, "must be a list of lower-case words")
            return []
        return [str(w) for w in raw]

    def _int(self, item: dict[str, object], path: tuple[str | int, ...], default: int) -> int:
        value = item.get(str(path[-1]), default)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_WITHIN:
            self._error(path, f"must be a whole number from 0 to {_MAX_WITHIN}")
            return default
        return value

    def _error(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        mark = self.loaded.mark_for(path, key=key)
        self.findings.append(Finding(mark.file, mark.line, mark.col, Severity.ERROR, message,
                                     "crisis-rules"))
