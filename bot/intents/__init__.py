"""Clear intents in a client's words, outside any script step.

Three readings the engine makes of free text, after the crisis scan and before the script
sees it, each from a locale's phrase lists (``prompts/<locale>/intents.yaml``, therapist-
editable):

* a **stop request** in words ("please stop", "i want to stop", "leave me alone"): the
  client is asked once, with one tap, whether to stop everything — never given the next step
  (the exact STOP words halt at once, without asking: :data:`bot.engine.STOP_WORDS`);
* the **answer to "are you safe right now?"** typed instead of tapped: yes, no, or unsure —
  and anything unclear is unsure, which the engine treats as not safe;
* an **under-arousal cue** ("numb", "foggy", "far away", "nothing feels real"), which
  routes to grounding.
"""

from bot.intents._book import IntentBook, load_intents
from bot.intents._read import Intents, SafetyAnswer

__all__ = ["IntentBook", "Intents", "SafetyAnswer", "load_intents"]
