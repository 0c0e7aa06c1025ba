"""Telegram HTML: a rendered text always parses as what Telegram's HTML parse mode accepts.

Stray ``<``, ``>`` and ``&`` and tags Telegram does not know are escaped, and unclosed tags
are closed; :class:`HtmlTidy` also reports such slips, for the author.
"""

from __future__ import annotations

import html
import re

#: Tags Telegram's HTML parse mode understands.
_TELEGRAM_TAGS = frozenset(
    {
        "a", "b", "blockquote", "code", "del", "em", "i", "ins", "pre", "s", "span",
        "strike", "strong", "tg-emoji", "tg-spoiler", "u",
    }
)  # fmt: skip
_TAG_LIST = '<b>, <i>, <u>, <s>, <a href="…">, <code>, <pre>, <blockquote>, <tg-spoiler>'
_HTML_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<name>[A-Za-z][A-Za-z0-9-]*)(?P<attrs>\s[^<>]*)?>"
    r"|(?P<entity>&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);)"
    r"|(?P<stray>[<>&])"
)
_TAG = re.compile(r"<[^<>]*>")


class HtmlTidy:
    """Keeps text valid Telegram HTML: escapes stray characters and unknown tags, closes tags.

    Text is fed in pieces (each with the line it starts on) so that :meth:`Renderer.check`
    can locate problems in the literal parts of a template.
    """

    def __init__(self) -> None:
        self.open: list[tuple[str, int]] = []
        self.problems: list[tuple[int, str]] = []

    def feed(self, text: str, line: int = 1) -> str:
        out: list[str] = []
        last = 0
        for match in _HTML_TOKEN.finditer(text):
            out.append(text[last : match.start()])
            last = match.end()
            out.append(self._token(match, line + text.count("\n", 0, match.start())))
        out.append(text[last:])
        return "".join(out)

    def close(self) -> str:
        for name, line in self.open:
            self.problems.append((line, f"<{name}> is never closed; add </{name}>"))
        closing = "".join(f"</{name}>" for name, _ in reversed(self.open))
        self.open.clear()
        return closing

    def _token(self, match: re.Match[str], line: int) -> str:
        token = match.group()
        if match.group("entity"):
            return token
        if match.group("stray"):
            return html.escape(token, quote=False)
        name = match.group("name").lower()
        if name not in _TELEGRAM_TAGS:
            self.problems.append(
                (line, f"{token} is not a tag Telegram knows, so it shows as text; "
                       f"tags you can use: {_TAG_LIST} (write &lt; for a plain <)")
            )  # fmt: skip
            return html.escape(token)
        if not match.group("close"):
            self.open.append((name, line))
            return token
        if self.open and self.open[-1][0] == name and not match.group("attrs"):
            self.open.pop()
            return token
        expected = f"</{self.open[-1][0]}>" if self.open else "no closing tag"
        self.problems.append((line, f"{token} does not match the open tags; expected {expected}"))
        return html.escape(token)


def plain_text(html_text: str) -> str:
    """Return the text a client sees for Telegram HTML: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", html_text))


def visible_length(html_text: str) -> int:
    """Return the length Telegram counts for an HTML text (UTF-16 code units of its text)."""
    return len(plain_text(html_text).encode("utf-16-le")) // 2
