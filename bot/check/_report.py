"""How ``rehearse check`` reports: findings at marks, and the words its messages share."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass, field

from bot.check._graph import path_to
from bot.script._findings import Finding
from bot.script._load import LoadedScript
from bot.script._yaml import Mark


@dataclass
class Report:
    """The findings of one check, in the order found."""

    findings: list[Finding] = field(default_factory=list)

    def error(self, mark: Mark, code: str, message: str) -> None:
        """Report an error at ``mark``."""
        self.findings.append(Finding.error(mark, code, message))

    def warn(self, mark: Mark, code: str, message: str) -> None:
        """Report a warning at ``mark``."""
        self.findings.append(Finding.warning(mark, code, message))


def did_you_mean(word: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def route(parents: dict[str, str | None], step_id: str) -> str:
    """How a search reached a step, for a message: the path, or that it is the first step."""
    path = path_to(parents, step_id)
    return shown_path(path) if len(path) > 1 else "it is the first step"


def item_mark(script: LoadedScript, kind: str, item_id: str, *sub: str | int) -> Mark:
    """Where a prompt or exercise (or a path below it) is written."""
    return script.origins[f"{kind}:{item_id}"].mark(*sub)


def own(script: LoadedScript, kind: str, item_id: str) -> bool:
    """Whether a prompt or exercise is written in the script itself (not an include)."""
    return script.origins[f"{kind}:{item_id}"].source is script.source


def shown_path(path: list[str]) -> str:
    """A path of step ids for a message, shortened in the middle when long."""
    shown = path if len(path) <= 6 else [*path[:2], "…", *path[-3:]]
    return " → ".join(shown)
