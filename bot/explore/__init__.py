"""``rehearse check --explore``: walk every path of a script through the real engine.

Simulated clients (:data:`CLIENTS`) consent, choose the script and then answer every place in
every way — every live button, words, ratings low, at the threshold and high, body cues,
skipping, smaller steps, pausing and resuming, the silence timer and the session cap — while
``/stop``, a stop word and crisis language are tried at every place. The safety invariants of
:mod:`bot.explore._rules` are checked on every transition; a violation comes with the shortest
path to it. A walk is bounded (:class:`Limits`) and deterministic, and its
:attr:`~Exploration.fingerprint` digests every outcome, so that a refactoring of the engine can
show that it changed no behaviour.

Typical use::

    loaded = build(load_config(None))
    for script in loaded.scripts.values():
        print(explore(script, loaded.engine.resources).summary())
"""

from bot.explore._clients import CLIENTS, Client
from bot.explore._walk import Exploration, Limits, Violation, explore

__all__ = ["CLIENTS", "Client", "Exploration", "Limits", "Violation", "explore"]
