"""Rehearse: a Telegram bot for rehearsing self-disclosure in small, safe steps.

The package is split into a pure core and thin edges:

* :mod:`bot.script` — the script language (load, validate, check, graph, schema).
* :mod:`bot.engine` — the pure dialogue engine (no I/O, no clock, no randomness).
* :mod:`bot.render` — the one place that turns templates into text.
* :mod:`bot.store` — the one place that speaks SQL.
* :mod:`bot.telegram` — the python-telegram-bot adapter.
* :mod:`bot.terminal` — the same engine and store in a terminal.
* :mod:`bot.cli` — the ``rehearse`` console command.
"""

__version__ = "0.1.0"
