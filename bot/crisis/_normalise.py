"""From a message to words a rule can match: folding, chat spelling, joins, typos, lemmas.

Every step exists because people in distress type fast and hide words, on purpose or not:
look-alike letters from other alphabets ("kіll" with a Cyrillic і), invisible characters
inside a word ("ki\u200bll"), digits for letters ("k1ll"), chat spellings ("want 2 die",
"im", "he'll"), words run together ("killmyself") or spaced out ("d i e"), letters masked
with a star ("s*icide"), dropped g's ("thinkin"), typos ("wnat", "suicidle") and emoji
standing for a word (a pill). Nothing here knows what is risky: that is the rule book's
job. The text is only ever held in memory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import NamedTuple

import simplemma
from rapidfuzz.distance import OSA
from rapidfuzz.process import extract

#: Letters from other alphabets that look like Latin ones (after NFKC), from Unicode's
#: confusables list (https://www.unicode.org/Public/security/latest/confusables.txt),
#: limited to the Cyrillic, Greek and Armenian letters that pass for a-z in chat fonts.
CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i",
    "ї": "i", "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q",
    "г": "r", "ѕ": "s", "т": "t", "у": "y", "ѵ": "v", "ԝ": "w", "х": "x", "ү": "y",
    "ɑ": "a", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ѡ": "w",
    "ɡ": "g", "ı": "i", "ȷ": "j", "ʟ": "l", "ո": "n", "օ": "o", "ս": "u", "հ": "h",
    "ց": "g", "ɩ": "i", "ӏ": "l", "ǀ": "l", "ⅼ": "l",
})

#: Digits and symbols that stand for letters inside a word ("k1ll", "d13", "$uicide").
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a",
         "$": "s", "!": "i", "|": "l", "€": "e"}
_LEET_ALT = {"1": "l", "!": "l"}  # the other reading, tried when the first is not a word

#: The form every pure-digit word also has ("5" in "5 kms"), so a rule can say "after a
#: number" with the literal word ``number`` (for example in ``not_after``).
NUMBER = "number"
#: The further form of a pure-digit word of ten or more ("took 30 tablets": more than a dose).
LARGE_NUMBER = "largenumber"
_LARGE_DIGITS = 2  # ten or more

_CHARS = r"a-z0-9@$!|€*"
#: Single letters with dots between them ("s.h"), a word (with apostrophes and slashes
#: inside it: "he'll", "s/h"), or any other character.
_TOKEN = re.compile(rf"(?P<dotted>(?<![a-z])[a-z](?:\.[a-z])+(?![a-z]))"
                    rf"|(?P<word>[{_CHARS}]+(?:['/][{_CHARS}]+)*)|(?P<other>\S|\n)")
_WORDY = re.compile(r"[a-z]")
_REPEATS = re.compile(r"(.)\1{2,}")
_NUMBER_UNIT = re.compile(r"(\d+)([a-z]+)")
_DIGITS = re.compile(r"(\d+)")
#: Capital I's right after a small letter (of any alphabet) stand for l's ("kiII" is "kill").
_CAPITAL_I = re.compile(r"(?<=[^\W\d_])I+")
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "`": "'", "‘": "'", "′": "'"})
#: Marks that end a clause: the context layer keeps a negation or a frame inside its clause.
_CLAUSE_MARKS = frozenset(".,;:!?…\n")
#: The note a clause mark carries among the raw tokens.
_BREAK = "clause mark"
#: The shortest run of single letters read as one spaced-out word ("d i e").
_MIN_SPACED = 3
#: Repairs are bounded so that any message costs time in proportion to its length: a join
#: has at most this many parts of at most ``_MAX_PART`` letters; a typo is looked for only in
#: words of at most ``_MAX_TYPO`` letters; longer runs of spaced letters are left alone.
_MAX_PARTS = 4
_MAX_PART = 14
_MAX_TYPO = 24
_CACHE_SIZE = 65536
#: Rule words this short are typo targets only for longer words (a letter too many: "dyie").
_SHORT = 3


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a message as rules see it.

    Attributes:
        text: The word after folding and repair (e.g. ``kill`` for ``k1ll``).
        forms: The word and its lemma, the strings concepts are matched against.
        repaired: How it was repaired, for explanations (``typo of want``), or "".
        opens_clause: A sentence mark (``. , ; : ! ?`` or a line break) stands right before
            it. Rules match across marks; only the context layer reads clauses.
    """

    text: str
    forms: frozenset[str]
    repaired: str = ""
    opens_clause: bool = False


def fold(text: str) -> str:
    """Case-fold and unify a message's characters; drop invisible ones and accents.

    NFKC unifies compatibility forms (fullwidth letters, ligatures); every format character
    (category Cf: zero-width spaces and joiners, soft hyphens, direction marks) is removed, so
    is every combining mark (accents, "zalgo" stacks); look-alike letters become Latin ones
    and apostrophes are dropped so that "don't" and "dont" are one word.
    """
    return _fold_chars(text).replace("'", "")


def _fold_chars(text: str, *, small_l: bool = False) -> str:
    """:func:`fold`, keeping apostrophes (all written as ``'``) for chat spellings.

    With ``small_l``, a capital I right after a small letter is read as an l first ("kiII"),
    one character for one, so the result lines up with the plain fold.
    """
    text = unicodedata.normalize("NFKC", text)
    if small_l:
        text = _CAPITAL_I.sub(_small_l, text)
    text = text.casefold()
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if unicodedata.category(ch) not in ("Cf", "Mn", "Me"))
    return text.translate(CONFUSABLES).translate(_APOSTROPHES)


def _small_l(found: re.Match[str]) -> str:
    """The l's that capital I's after a small letter stand for (not in "SKIING")."""
    before = found.string[found.start() - 1]
    return "l" * len(found.group()) if before.islower() else found.group()


def _emoji_word(char: str) -> str | None:
    """A pictograph as the word its Unicode name spells (💊 → ``pill``), or None."""
    if unicodedata.category(char) != "So":
        return None
    name = "".join(ch for ch in unicodedata.name(char, "").casefold() if ch.isalnum())
    return name or None


class _Repaired(NamedTuple):
    """A word as repaired: its text, how, and other equally likely readings (typos)."""

    text: str
    how: str = ""
    also: tuple[str, ...] = ()


#: At most this many equally near rule words are kept as readings of one typo.
_MAX_READINGS = 3


@dataclass(frozen=True)
class Speller:
    """Repairs chat spelling with a vocabulary: the rule book's words plus a dictionary.

    Attributes:
        chat: Chat spellings and contractions, each to one or more words (``im`` → ``i am``,
            ``he'll`` → ``he will``); a spelling may keep its apostrophe.
        vocabulary: Every word the rule book names; joins and typos are repaired only into
            these, so a repair can never invent a word no rule cares about.
        glue: Short everyday words and chat spellings allowed as parts of a join (``kill`` +
            ``my`` + ``self``, ``i`` + ``wanna`` + ``die``).
        lang: The simplemma language code, for lemmas and for knowing a real word.
    """

    chat: Mapping[str, tuple[str, ...]]
    vocabulary: frozenset[str]
    glue: frozenset[str]
    lang: str = "en"
    #: Repairs already worked out, by raw word (a message often repeats its words).
    _cache: dict[str, list[_Repaired]] = field(default_factory=dict, compare=False, repr=False)

    def prepare(self) -> None:
        """Load what repairs look words up in now (simplemma's dictionary of known words,
        the typo targets), so that a client's first message does not wait for it."""
        _known("the", self.lang)
        for short in (False, True):
            _targets(self.vocabulary, frozenset(self.chat), short=short)
        _targets(self.vocabulary, frozenset(), short=False)

    def words(self, text: str) -> list[Word]:
        """The message as repaired words, in order."""
        words: list[Word] = []
        opens = False
        for raw, how in self._tokens(text):
            if how == _BREAK:
                opens = bool(words)
                continue
            start = len(words)
            if how:  # a pictograph, read as its name and never repaired
                words.extend(self._expand(raw, how))
            else:
                for part in self._repaired(raw):
                    words.extend(self._expand(part.text, part.how,
                                              number=part.text.isdigit(), also=part.also))
            if opens and len(words) > start:
                words[start] = replace(words[start], opens_clause=True)
                opens = False
        return words

    # -- tokens -----------------------------------------------------------------------------
    def _tokens(self, text: str) -> list[tuple[str, str]]:
        """Raw words in order; pictographs as their names (with a note), slashes resolved.

        A capital I after a small letter is an l when only that reading is a word ("kiII").
        ``s/h``, ``s.h`` and ``w/o`` (single letters around slashes or dots) are one
        abbreviation; other
        slashed words are separate words ("and/or"). Stars and ``!|`` at either end are
        punctuation ("*hugs*", "die!!"), and so is a leading ``@`` (a mention). A run of
        single letters spelled out ("d i e") is one word when, joined, it is a word or
        splits into rule words.
        """
        tokens: list[tuple[str, str]] = []
        text = text.replace("\n", " \n ")  # a line break is a clause mark, not whitespace
        folded = _fold_chars(text)
        with_l = _fold_chars(text, small_l=True)
        if len(with_l) != len(folded):
            with_l = folded
        for found in _TOKEN.finditer(folded):
            if found.group("dotted"):
                tokens.append((found.group("dotted").replace(".", ""), ""))
                continue
            word = found.group("word")
            if word is None:
                other = found.group("other")
                name = _emoji_word(other) if other not in _CLAUSE_MARKS else None
                if name is not None:
                    tokens.append((name, f"emoji {name}"))
                elif other in _CLAUSE_MARKS:
                    tokens.append(("", _BREAK))
                continue
            word = word.strip("*!|").lstrip("@")
            as_l = with_l[found.start("word"):found.end("word")].strip("*!|").lstrip("@")
            if as_l != word and self.knows(as_l) and not self.knows(word):
                word = as_l  # "kiII" is "kill", but "QuIt" stays "quit"
            parts = word.split("/")
            if len(parts) > 1 and all(len(p) == 1 for p in parts):
                tokens.append(("".join(parts), ""))
            else:
                tokens.extend((p, "") for p in parts if p)
        return self._join_spaced(tokens)

    def _join_spaced(self, tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
        joined: list[tuple[str, str]] = []
        i = 0
        while i < len(tokens):
            end = i
            while end < len(tokens) and len(tokens[end][0]) == 1 and tokens[end][0].isalpha() \
                    and not tokens[end][1]:
                end += 1
            if end - i > _MAX_PARTS * _MAX_PART:  # too long to be one word: left as it is
                joined.extend(tokens[i:end])
                i = end
                continue
            if end - i >= _MIN_SPACED:
                word = "".join(t for t, _ in tokens[i:end])
                if self._readable(word):
                    joined.append((word, ""))
                    i = end
                    continue
            joined.append(tokens[i])
            i += 1
        return joined

    def knows(self, token: str) -> bool:
        """Whether a raw token, apostrophes aside, is a rule word, a chat spelling or a word
        of the dictionary."""
        plain = token.replace("'", "")
        return plain in self.vocabulary or plain in self.chat or self._known(plain)

    def _readable(self, word: str) -> bool:
        """Whether a spelled-out run, joined, is a word or splits into rule words."""
        return (word in self.vocabulary or word in self.chat or self._known(word)
                or self._split(word) is not None)

    # -- repairs ----------------------------------------------------------------------------
    def _repaired(self, raw: str) -> list[_Repaired]:
        """:meth:`_repair`, remembered for the most recent ``_CACHE_SIZE`` distinct words."""
        found = self._cache.get(raw)
        if found is None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            found = self._cache[raw] = self._repair(raw)
        return found

    def _repair(self, raw: str) -> list[_Repaired]:
        """One raw token as one or more words, each with how it was repaired."""
        if raw in self.chat or raw in self.vocabulary:
            return [_Repaired(raw)]
        if "'" in raw:
            raw = raw.replace("'", "")
            if raw in self.chat or raw in self.vocabulary:
                return [_Repaired(raw)]
        if "*" in raw:
            unmasked = self._unmask(raw) if len(raw) <= _MAX_TYPO else None
            return [_Repaired(unmasked, f"masked letters in {raw}")] if unmasked \
                else [_Repaired(raw)]
        token, how = raw, ""
        if _WORDY.search(raw) and not raw.isalpha():
            token, how = self._unleet(raw), f"digits for letters in {raw}"
            unit = _NUMBER_UNIT.fullmatch(raw)
            if unit and not (token in self.vocabulary or token in self.chat
                             or self._known(token)):
                return [_Repaired(unit.group(1)), _Repaired(unit.group(2))]  # "5kms"
        if not token.isalpha():
            return self._split_at_chat_digits(raw)
        if token in self.vocabulary or token in self.chat or self._known(token):
            return [_Repaired(token, how)]
        dropped_g = token + "g"
        if token.endswith("in") and (dropped_g in self.vocabulary or self._known(dropped_g)):
            return [_Repaired(dropped_g, f"dropped g in {raw}")]  # "thinkin"
        squeezed = self._squeeze(token)
        if squeezed != token:
            return [_Repaired(squeezed, f"repeated letters in {raw}")]
        joined = self._split(token)
        # a join of three words or with a one-letter word inside ("exs is ting", "exs i
        # sting") is likelier a typo when one is near ("existing")
        doubtful = joined is not None and (
            len(joined) > 2 or any(len(part) == 1 for part in joined[1:]))
        fixed = self._typos(token) if not joined or doubtful else ()
        if joined and not fixed:
            return [_Repaired(part, f"joined words in {raw}") for part in joined]
        if fixed:  # every rule word equally near: when in doubt, both readings count
            return [_Repaired(fixed[0], f"typo of {' or '.join(fixed)}", fixed[1:])]
        return [_Repaired(token, how)]

    def _split_at_chat_digits(self, raw: str) -> list[_Repaired]:
        """``wan2die`` → ``wan 2 die`` (then "want to die"): digits that are chat words."""
        pieces = [p for p in _DIGITS.split(raw) if p]
        if len(pieces) < 2 or not all(
            (p in self.chat) if p.isdigit() else (len(p) >= 2 and p.isalpha()) for p in pieces
        ):
            return [_Repaired(raw)]
        return [part._replace(how=part.how or f"joined words in {raw}")
                for piece in pieces for part in self._repair(piece)]

    def _unleet(self, raw: str) -> str:
        first = "".join(_LEET.get(ch, ch) for ch in raw)
        if self._known(first) or first in self.vocabulary:
            return first
        second = "".join(_LEET_ALT.get(ch, _LEET.get(ch, ch)) for ch in raw)
        return second if (self._known(second) or second in self.vocabulary) else first

    def _squeeze(self, token: str) -> str:
        """``diiiie`` → ``die``; ``killll`` → ``kill``: runs of three or more letters."""
        if not _REPEATS.search(token):
            return token
        candidates = (_REPEATS.sub(r"\1\1", token), _REPEATS.sub(r"\1", token))
        for candidate in candidates:  # an exact word first: "diiie" is "die", not "dive"
            if candidate in self.vocabulary or self._known(candidate):
                return candidate
        for candidate in candidates:
            fixed = self._typos(candidate)
            if fixed:
                return fixed[0]
        return token

    def _split(self, token: str) -> list[str] | None:
        """``killmyself`` → ``kill my self``: only into rule words and glue, fewest parts."""
        if not 5 <= len(token) <= _MAX_PARTS * _MAX_PART:
            return None
        return _segment(token, self.vocabulary, self.glue, self.lang)

    def _unmask(self, token: str) -> str | None:
        """``s*icide`` → ``suicide``: the one rule word the star hides a letter of.

        Each star stands for one letter (``k*ll``) or, failing that, for one to three
        (``s*cide``); a word is repaired only when exactly one rule word fits.
        """
        for letters in ("{1}", "{1,3}"):
            pattern = re.compile(re.escape(token).replace(r"\*", f"[a-z]{letters}"))
            found = [w for w in self._typo_targets if pattern.fullmatch(w)]
            if len(found) == 1:
                return found[0]
        return None

    def _typos(self, token: str) -> tuple[str, ...]:
        """The rule words (or chat spellings) nearest a word no dictionary knows, best first.

        One edit away (two for long words); several when they are equally near ("wsh" is
        wash or wish), at most ``_MAX_READINGS``. A chat spelling is a target too ("wna" is
        "wana", "selfharmedd" is "selfharmed"), and a word of four letters or more may be a
        three-letter rule word with a letter too many ("dyie" is "die").
        """
        if not 3 <= len(token) <= _MAX_TYPO:
            return ()
        limit = 1 if len(token) < 7 else 2
        targets = _targets(self.vocabulary, frozenset(self.chat), short=len(token) > _SHORT)
        found = extract(token, targets, scorer=OSA.distance, score_cutoff=limit, limit=None)
        if not found:
            return ()
        best = min(score for _, score, _ in found)
        nearest = sorted(str(word) for word, score, _ in found if score == best)
        return tuple(nearest[:_MAX_READINGS])

    @property
    def _typo_targets(self) -> list[str]:
        return _targets(self.vocabulary, frozenset(), short=False)

    def _known(self, token: str) -> bool:
        return _known(token, self.lang)

    def _expand(
        self, token: str, how: str, *, number: bool = False, also: tuple[str, ...] = ()
    ) -> list[Word]:
        """The words a token stands for; a number's words also have the form ``number``;
        ``also``: other readings of a typo, whose forms the word has too."""
        extra: frozenset[str] = frozenset(f for other in also for f in self._forms(other))
        if number:
            large = len(token.lstrip("0")) >= _LARGE_DIGITS  # no int(): any length is fine
            extra = frozenset((NUMBER, token, LARGE_NUMBER) if large else (NUMBER, token))
        parts = self.chat.get(token)
        if parts is not None:
            note = how or f"chat spelling {token}"
            return [Word(p, self._forms(p) | extra, note) for p in parts]
        return [Word(token, self._forms(token) | extra, how)]

    def _forms(self, token: str) -> frozenset[str]:
        return _forms(token, self.lang)


@lru_cache(maxsize=8)
def _targets(vocabulary: frozenset[str], chat: frozenset[str], *, short: bool) -> list[str]:
    """Typo targets: rule words and chat spellings long enough that one edit is still
    recognisably them; with ``short``, three-letter rule words too."""
    shortest = _SHORT if short else _SHORT + 1
    words = {w for w in vocabulary if len(w) >= shortest and w.isalpha()}
    words.update(w for w in chat if len(w) > _SHORT and w.isalpha())
    return sorted(words)


@lru_cache(maxsize=65536)
def _known(token: str, lang: str) -> bool:
    return bool(simplemma.is_known(token, lang=lang))


#: Stems the plain suffix stripping must not produce: "noted", "notes" and "noting" are no
#: negation, though stripping "ed", "es" or "ing" leaves "not".
_NOT_A_STEM = frozenset({"not"})


@lru_cache(maxsize=65536)
def _forms(token: str, lang: str) -> frozenset[str]:
    """The word itself, its dictionary lemma and a plain suffix-stripped stem."""
    forms = {token, simplemma.lemmatize(token, lang=lang)}
    for suffix, repl in (("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("es", ""),
                         ("s", ""), ("ies", "y"), ("ied", "y")):
        if not token.endswith(suffix) or len(token) - len(suffix) < 3:
            continue
        stem = token[: len(token) - len(suffix)] + repl
        if stem not in _NOT_A_STEM:
            forms.add(stem)
            if len(stem) >= 3 and stem[-1] == stem[-2]:  # cutting → cutt → cut
                forms.add(stem[:-1])
    return frozenset(forms)


def _segment(
    token: str, vocabulary: Collection[str], glue: Collection[str], lang: str
) -> list[str] | None:
    """Split ``token`` into the fewest parts (at most ``_MAX_PARTS``): rule words and glue;
    of splits as short, the one with the fewest one-letter words ("end it all", not "end i
    tall").

    At least one part must be a rule word, so a join is only ever repaired into something a
    rule can use.
    """

    def cost(parts: list[str]) -> tuple[int, int]:
        return len(parts), sum(len(p) == 1 for p in parts)

    def rule_word(part: str) -> bool:
        return part in vocabulary or not _forms(part, lang).isdisjoint(vocabulary)

    best: dict[int, list[str]] = {0: []}
    for end in range(1, len(token) + 1):
        for start in range(max(0, end - _MAX_PART), end):
            part = token[start:end]
            if start in best and len(best[start]) < _MAX_PARTS and (
                part in glue or (len(part) >= 3 and rule_word(part))
            ):
                candidate = [*best[start], part]
                if end not in best or cost(candidate) < cost(best[end]):
                    best[end] = candidate
    found = best.get(len(token))
    if not found or len(found) < 2:
        return None
    return found if any(rule_word(p) for p in found) else None
