"""A script's flow as a graph: the edges the engine follows, and Mermaid/Graphviz drawings.

:class:`StepGraph` is the one place that knows where each step kind can go next; the checker
proves its safety properties on it and the drawings show it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.script import _model as m
from bot.script._load import LoadedScript
from bot.script._yaml import Mark, Path_

__all__ = ["Edge", "StepGraph", "own_calm", "path_to", "to_dot", "to_mermaid"]

#: What the engine does when a check-in or role-play finds distress high.
DEESCALATION = "re-rate, ≤2 rounds, then gentle close"


@dataclass(frozen=True, slots=True)
class Edge:
    """One way from a step to the next.

    Attributes:
        source: The step the edge leaves.
        target: The step it leads to; None where the script runs out (no step follows).
        path: Where the target is written, below the step (empty when it is implicit).
        label: A choice's label or a branch arm's condition, for drawings.
        sets: The variables the engine sets when the client leaves this way.
    """

    source: str
    target: str | None
    path: Path_
    label: str = ""
    sets: frozenset[str] = frozenset()


class StepGraph:
    """The steps of a script and the edges between them, with O(1) look-ups.

    The engine's rule for what follows a step is :meth:`LoadedScript.following`; this class
    applies the same rule with a position index, so a whole script is walked in linear time.
    """

    def __init__(self, script: LoadedScript) -> None:
        self.script = script
        self.order = list(script.steps)
        self.position = {step_id: index for index, step_id in enumerate(self.order)}
        self._edges = {step_id: self._edges_of(step_id) for step_id in self.order}

    def following(self, step_id: str) -> str | None:
        """The step after ``step_id`` without a jump: its ``next``, else the one below."""
        step = self.script.steps[step_id]
        if step.next is not None:
            return step.next
        index = self.position[step_id] + 1
        return self.order[index] if index < len(self.order) else None

    def edges(self, step_id: str) -> list[Edge]:
        """Every way out of a step, in the order written."""
        return self._edges[step_id]

    def successors(self, step_id: str) -> Iterable[str]:
        """The existing steps a step can lead to (unknown and missing targets left out)."""
        return (e.target for e in self._edges[step_id] if e.target in self.script.steps)

    def predecessors(self) -> dict[str, list[str]]:
        """For every step, the steps that lead to it."""
        before: dict[str, list[str]] = {step_id: [] for step_id in self.order}
        for step_id in self.order:
            for target in self.successors(step_id):
                before[target].append(step_id)
        return before

    def search(
        self, start: str | None, blocked: Callable[[str], bool] = lambda _: False
    ) -> dict[str, str | None]:
        """Breadth-first search from ``start`` that never enters a ``blocked`` step.

        Returns:
            Every step found, mapped to the step it was first reached from (None for start).
        """
        if start is None or blocked(start):
            return {}
        parents: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for target in self.successors(here):
                if target not in parents and not blocked(target):
                    parents[target] = here
                    queue.append(target)
        return parents

    def mark(self, step_id: str, *sub: str | int, key: bool = False) -> Mark:
        """The mark of a step, or of a path below it."""
        return self.script.source.mark_for(("steps", self.position[step_id], *sub), key=key)

    def _edges_of(self, step_id: str) -> list[Edge]:
        step = self.script.steps[step_id]
        implicit: Path_ = ("next",) if step.next is not None else ()
        if step.end is not None:
            return []
        if step.branch is not None:
            return [
                Edge(step_id, arm.goto, ("branch", i, "goto"), arm.if_ or "otherwise")
                for i, arm in enumerate(step.branch)
            ]
        if step.ask is None:
            sets = frozenset(step.set or {})
            return [Edge(step_id, self.following(step_id), implicit, sets=sets)]
        ask = step.ask
        saved = {ask.save_as} if ask.save_as is not None else set()
        edges = [
            Edge(step_id, choice.goto or self.following(step_id),
                 ("ask", "choices", i, "goto") if choice.goto is not None else implicit,
                 choice.label, frozenset(saved | set(choice.set or {})))
            for i, choice in enumerate(ask.choices)
        ]
        if ask.free_text is not None:
            typed = {ask.free_text.save_as} if ask.free_text.save_as is not None else set()
            edges.append(Edge(step_id, self.following(step_id), implicit, "typed answer",
                              frozenset(typed)))
        return edges


def path_to(parents: dict[str, str | None], step_id: str) -> list[str]:
    """The steps from the search's start to ``step_id``, as found by :meth:`StepGraph.search`."""
    path: list[str] = []
    here: str | None = step_id
    while here is not None:
        path.append(here)
        here = parents[here]
    return path[::-1]


# --- drawings ---------------------------------------------------------------------------------

_LEVEL_COLOURS = ("#e8f5e9", "#c8e6c9", "#fff9c4", "#ffe0b2", "#ffcdd2")
_CHECKIN_COLOUR = "#bbdefb"
_CALM_COLOUR = "#e1bee7"


@dataclass(frozen=True, slots=True)
class _Node:
    id: str
    lines: tuple[str, ...]
    shape: str  # box, hexagon, diamond, stadium, round
    style: str = ""  # level1…level5, checkin, calm or ""


@dataclass(frozen=True, slots=True)
class _Link:
    source: str
    target: str
    label: str = ""
    dotted: bool = False


@dataclass(frozen=True, slots=True)
class _Diagram:
    title: str
    nodes: tuple[_Node, ...]
    links: tuple[_Link, ...]


def _diagram(script: LoadedScript) -> _Diagram:
    """Everything both drawings show: steps, edges and de-escalation."""
    graph = StepGraph(script)
    node_id = {step_id: f"s{index}" for index, step_id in enumerate(graph.order)}
    nodes = [_step_node(script, node_id[step_id], step) for step_id, step in script.steps.items()]
    links: list[_Link] = []
    calm_nodes: dict[tuple[str, ...], str] = {}
    for step_id in graph.order:
        for edge in graph.edges(step_id):
            if edge.target is None:
                continue
            if edge.target not in node_id:
                node_id[edge.target] = f"x{len(node_id)}"
                nodes.append(_Node(node_id[edge.target], (edge.target, "unknown step"), "box"))
            links.append(_Link(node_id[step_id], node_id[edge.target], edge.label))
        calm = _calm_of(script, script.steps[step_id])
        if calm is not None:
            if calm not in calm_nodes:
                calm_nodes[calm] = f"c{len(calm_nodes)}"
                text = f"calm: {', '.join(calm) or 'none'} ({DEESCALATION})"
                nodes.append(_Node(calm_nodes[calm], (text,), "round", "calm"))
            links.append(_Link(node_id[step_id], calm_nodes[calm], "distress high", dotted=True))
    return _Diagram(script.id, tuple(nodes), tuple(links))


def own_calm(step: m.Step) -> list[str] | None:
    """The step's own ``calm`` list if it is a check-in or role-play; None for other steps."""
    if step.checkin is not None:
        return step.checkin.calm
    return step.roleplay.calm if step.roleplay is not None else None


def _calm_of(script: LoadedScript, step: m.Step) -> tuple[str, ...] | None:
    """The de-escalation exercises of a check-in or role-play; None for other steps."""
    own = own_calm(step)
    return None if own is None else tuple(script.calm_for(own))


def _step_node(script: LoadedScript, node_id: str, step: m.Step) -> _Node:
    head = step.id
    if step.checkin is not None:
        return _Node(node_id, (head, f"check-in ({step.checkin.moment.value})"), "hexagon",
                     "checkin")
    if step.prompt is not None:
        level = step.prompt.level
        shown = f"level {level}" if level != "current" else f"current level (≤{script.meta.level})"
        topic = f" · {step.prompt.topic}" if step.prompt.topic else ""
        drawn = script.meta.level if level == "current" else level
        return _Node(node_id, (head, f"prompt{topic} · {shown}"), "box", f"level{drawn}")
    if step.roleplay is not None:
        levels = sorted({turn.level for turn in step.roleplay.turns})
        shown = f"level {levels[0]}" + (f"–{levels[-1]}" if len(levels) > 1 else "")
        return _Node(node_id, (head, f"role-play · {step.roleplay.character} · {shown}"), "box",
                     f"level{levels[-1]}")
    if step.end is not None:
        return _Node(node_id, (head, "end"), "stadium")
    if step.branch is not None:
        return _Node(node_id, (head, "branch"), "diamond")
    if step.exercise is not None:
        return _Node(node_id, (head, f"exercise · {step.exercise}"), "box")
    return _Node(node_id, (head, step.kind), "box")


def _styles() -> list[tuple[str, str]]:
    """(class name, fill colour) of every style used in drawings."""
    levels = [(f"level{i}", colour) for i, colour in enumerate(_LEVEL_COLOURS, start=1)]
    return [*levels, ("checkin", _CHECKIN_COLOUR), ("calm", _CALM_COLOUR)]


# --- Mermaid ----------------------------------------------------------------------------------

_MERMAID_SHAPES = {
    "box": ('["', '"]'),
    "hexagon": ('{{"', '"}}'),
    "diamond": ('{"', '"}'),
    "stadium": ('(["', '"])'),
    "round": ('("', '")'),
}


def to_mermaid(script: LoadedScript) -> str:
    """Draw a script as a Mermaid flowchart (top to bottom).

    Check-ins are hexagons, ends are stadiums, branches are diamonds; prompts and role-plays
    carry their level (and a colour per level); every check-in and role-play has a dotted
    edge to its de-escalation node. Choice labels and conditions label the edges.
    """
    diagram = _diagram(script)
    out = ["flowchart TD", f"  %% script: {_mermaid_text(diagram.title)}"]
    for node in diagram.nodes:
        opening, closing = _MERMAID_SHAPES[node.shape]
        label = "<br/>".join(_mermaid_text(line) for line in node.lines)
        out.append(f"  {node.id}{opening}{label}{closing}")
    for link in diagram.links:
        arrow = "-.->" if link.dotted else "-->"
        label = f'|"{_mermaid_text(link.label)}"|' if link.label else ""
        out.append(f"  {link.source} {arrow}{label} {link.target}")
    for name, colour in _styles():
        out.append(f"  classDef {name} fill:{colour},stroke:#555")
    for node in diagram.nodes:
        if node.style:
            out.append(f"  class {node.id} {node.style}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    """Escape text for a quoted Mermaid label with entity codes (quotes, brackets, HTML)."""
    escaped = text.replace("#", "#35;")
    for char, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("&", "#amp;")):
        escaped = escaped.replace(char, code)
    for char, code in (("[", "#91;"), ("]", "#93;"), ("{", "#123;"), ("}", "#125;"),
                       ("|", "#124;")):
        escaped = escaped.replace(char, code)
    return " ".join(escaped.split())


# --- Graphviz DOT -----------------------------------------------------------------------------

#: Shape and base styles of each node shape.
_DOT_SHAPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "box": ("box", ()),
    "hexagon": ("hexagon", ()),
    "diamond": ("diamond", ()),
    "stadium": ("box", ("rounded",)),
    "round": ("box", ("rounded", "dashed")),
}


def to_dot(script: LoadedScript) -> str:
    """Draw a script as a Graphviz digraph with the same information as :func:`to_mermaid`."""
    diagram = _diagram(script)
    colours = dict(_styles())
    out = [
        f"digraph {_dot_text(diagram.title)} {{",
        "  rankdir=TB;",
        '  node [fontname="Helvetica"];',
        '  edge [fontname="Helvetica"];',
    ]
    for node in diagram.nodes:
        shape, styles = _DOT_SHAPES[node.shape]
        attrs = [f"label={_dot_text(*node.lines)}", f"shape={shape}"]
        if node.style:
            styles = (*styles, "filled")
            attrs.append(f'fillcolor="{colours[node.style]}"')
        if styles:
            attrs.append(f'style="{",".join(styles)}"')
        out.append(f"  {node.id} [{', '.join(attrs)}];")
    for link in diagram.links:
        attrs = [f"label={_dot_text(link.label)}"] if link.label else []
        if link.dotted:
            attrs.append("style=dotted")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        out.append(f"  {link.source} -> {link.target}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_text(*lines: str) -> str:
    """A double-quoted DOT string; lines are joined with centred line breaks."""
    escaped = (" ".join(line.split()).replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'
