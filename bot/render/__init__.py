"""Rendering: the one package that turns templates into text for the client.

Two kinds of template pass through here:

* **system texts** — every sentence the bot says on its own (consent, help, crisis, buttons …),
  loaded from ``prompts/<locale>/texts.yaml`` (:mod:`bot.render._files`); every key, with the
  sample values it is checked with, is in :data:`SYSTEM_TEXTS` (:mod:`bot.render._texts`);
* **script texts** — the texts of therapist-authored scripts.

Both are Jinja2 templates rendered by :class:`Renderer` in a tightened sandbox
(:mod:`bot.render._sandbox`) with strict undefined variables and HTML autoescaping. The result
is Telegram HTML (:mod:`bot.render._html`): tags written in a template are kept, values are
escaped, and a rendered text always parses as Telegram HTML.
"""

from bot.render._files import load_texts
from bot.render._html import plain_text, visible_length
from bot.render._renderer import (
    MAX_LABEL_LENGTH,
    MAX_MESSAGE_LENGTH,
    Renderer,
    RenderError,
    TemplateProblem,
)
from bot.render._texts import MAX_COMMAND_DESCRIPTION, SYSTEM_TEXTS, check_texts

__all__ = [
    "MAX_COMMAND_DESCRIPTION",
    "MAX_LABEL_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "SYSTEM_TEXTS",
    "RenderError",
    "Renderer",
    "TemplateProblem",
    "check_texts",
    "load_texts",
    "plain_text",
    "visible_length",
]
