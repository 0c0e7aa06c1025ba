"""Risk detection: a deterministic, explainable reading of free text for crisis language.

A locale's rule book (``prompts/<locale>/crisis_rules.yaml``, therapist-editable) names
*concepts* — lists of words such as means of harm, intent verbs, partner words — and *rules*
that combine them within a few words, each with a kind (suicide or self-harm, partner abuse,
sexual violence, a child at risk, harm to others). Messages are folded and repaired first
(look-alike letters, invisible characters, digits for letters, chat spelling, words run
together, typos), so that the rules see what the client meant. A second reader, a small
linear classifier trained offline on the labelled files (``reader_<locale>.json``), scores
the same words and, when the configuration turns it on, adds what the rules miss; it never
takes a rule's match away. A third, the sentence reader (a small language model fine-tuned
on the same files, ``sentence_<locale>.onnx``), reads the whole message when both pass it.
No network; the text is scanned in memory and never stored.
"""

from bot.crisis._detect import Detection, Detector, Match, SecondReading
from bot.crisis._evaluate import Case, Score, evaluate, read_cases
from bot.crisis._normalise import Speller, Word, fold
from bot.crisis._reader import Reader, Verdict, load_reader, reader_path
from bot.crisis._rules import KIND_ORDER, Kind, Pattern, Rule, RuleBook, load_rules
from bot.crisis._sentence import (
    SentenceReader,
    SentenceVerdict,
    load_sentence_reader,
    sentence_path,
)

__all__ = [
    "KIND_ORDER",
    "Case",
    "Detection",
    "Detector",
    "Kind",
    "Match",
    "Pattern",
    "Reader",
    "Rule",
    "RuleBook",
    "Score",
    "SecondReading",
    "SentenceReader",
    "SentenceVerdict",
    "Speller",
    "Verdict",
    "Word",
    "evaluate",
    "fold",
    "load_reader",
    "load_rules",
    "load_sentence_reader",
    "read_cases",
    "reader_path",
    "sentence_path",
]
