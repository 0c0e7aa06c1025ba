"""A script's flow as a graph: the edges the engine follows, and Mermaid/Graphviz drawings.

Where each kind of step can lead, and how it is drawn, is its step kind's to say
(:data:`bot.engine.steps.KINDS`); :class:`StepGraph` puts the edges of every step together, the
checker proves its safety properties on it and the drawings show it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.engine.steps import MAX_CALM_ROUNDS, Edge, kind_of
from bot.script import _model as m
from bot.script._load import LoadedScript
from bot.script._yaml import Mark

__all__ = ["DEESCALATION", "Edge", "StepGraph", "own_calm", "path_to", "to_dot", "to_mermaid"]

#: What the engine does when a check-in or role-play finds distress high.
DEESCALATION = f"re-rate, ≤{MAX_CALM_ROUNDS} rounds, then gentle close"


class StepGraph:
    """The steps of a script and the edges between them, with O(1) look-ups."""

    def __init__(self, script: LoadedScript) -> None:
        self.script = script
        self.order = list(script.steps)
        self.position = {step_id: index for index, step_id in enumerate(self.order)}
        self._edges = {step_id: kind_of(step).edges(step, script.following(step_id))
                       for step_id, step in script.steps.items()}

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
        return self.script.step_mark(step_id, *sub, key=key)


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
    """The step's own ``calm`` list if its kind de-escalates (check-in, role-play), else None."""
    return kind_of(step).calm(step)


def _calm_of(script: LoadedScript, step: m.Step) -> tuple[str, ...] | None:
    """The de-escalation exercises of a check-in or role-play; None for other steps."""
    own = own_calm(step)
    return None if own is None else tuple(script.calm_for(own))


def _step_node(script: LoadedScript, node_id: str, step: m.Step) -> _Node:
    drawing = kind_of(step).drawing(step, script)
    return _Node(node_id, (step.id, drawing.detail), drawing.shape, drawing.style)


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
