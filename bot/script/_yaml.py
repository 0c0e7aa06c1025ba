"""Strict, safe YAML loading for therapist-authored scripts.

PyYAML's safe parser only composes a node tree here; no Python object is ever
constructed from a tag. The plain data is built from that tree by this module,
so types stay predictable ("text stays text") and every value keeps the place
it was written. Every problem is raised as a :class:`ScriptError` whose
findings point at ``file:line:col``.
"""

from __future__ import annotations

import gc
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeAlias

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, Event, ScalarEvent, StreamEndEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.script._findings import Finding, ScriptError, quoted

__all__ = ["MAX_FILE_BYTES", "LoadedYaml", "Mark", "Path_", "file_kind", "load_yaml",
           "load_yaml_text", "read_regular"]

#: The largest file the loader reads, in bytes.
MAX_FILE_BYTES = 1_000_000

Path_: TypeAlias = tuple[str | int, ...]
"""A path into the document, e.g. ``("steps", 3, "ask", "choices", 0, "label")``."""

_STR_TAG = "tag:yaml.org,2002:str"
_IMPLICIT = ""  # the tag given to every node that was written without one
_BOM = b"\xef\xbb\xbf"
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Characters that change how text is shown while being invisible themselves, so a text could
#: read differently to a client than to the person reviewing the file: the bidirectional
#: embeddings, overrides and isolates, and zero-width characters that join nothing. Joiners
#: (U+200C, U+200D: emoji sequences, Persian and Indic spelling) and the direction marks
#: (U+200E, U+200F, U+061C: punctuation in right-to-left text) stay allowed.
_DISGUISING = {
    "\u202a": "left-to-right embedding",
    "\u202b": "right-to-left embedding",
    "\u202c": "pop directional formatting",
    "\u202d": "left-to-right override",
    "\u202e": "right-to-left override",
    "\u2066": "left-to-right isolate",
    "\u2067": "right-to-left isolate",
    "\u2068": "first strong isolate",
    "\u2069": "pop directional isolate",
    "\u200b": "zero-width space",
    "\u2060": "word joiner",
    "\u180e": "Mongolian vowel separator",
    "\ufeff": "zero-width no-break space",
}
_DISGUISE = re.compile("[" + "".join(_DISGUISING) + "]")
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # the breaks PyYAML counts

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_MAX_INT_CHARS = 4000  # longer digit runs stay text (Python refuses to parse > 4300 digits)


@dataclass(frozen=True, slots=True)
class Mark:
    """A position in a script file; line and column are 1-based."""

    file: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class LoadedYaml:
    """A loaded document with the position of every value and mapping key.

    Attributes:
        data: Plain Python data: ``dict[str, ...]``, list, str, int, float, bool or None.
        value_marks: Where each value (scalar, mapping or sequence) starts, by path.
        key_marks: Where each mapping key starts; the path ends with the key itself.
        file: The file name used in marks (for the 1:1 fallback of :meth:`mark_for`).
        size: The size of the document in bytes.
    """

    data: object
    value_marks: dict[Path_, Mark]
    key_marks: dict[Path_, Mark]
    file: str = ""
    size: int = 0

    def mark_for(self, path: Path_, *, key: bool = False) -> Mark:
        """Return the best mark for ``path``.

        Args:
            path: The path of a value (or, with ``key``, of a mapping key).
            key: Prefer the key's own mark over the value's.

        Returns:
            The exact mark if known, else that of the nearest known ancestor value,
            else line 1, column 1.
        """
        if key and path in self.key_marks:
            return self.key_marks[path]
        for end in range(len(path), -1, -1):
            mark = self.value_marks.get(path[:end])
            if mark is not None:
                return mark
        return Mark(self.file, 1, 1)


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int
    max_aliases: int
    max_nodes: int
    max_depth: int


class _Abort(Exception):
    """Stops loading at a problem that makes going on pointless or unsafe."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def load_yaml(
    path: Path,
    *,
    display_name: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    max_aliases: int = 50,
    max_nodes: int = 200_000,
    max_depth: int = 64,
) -> LoadedYaml:
    """Load one YAML script file strictly and safely.

    Args:
        path: The file to read: a regular file, of which at most ``max_bytes + 1`` bytes
            are read.
        display_name: The name to report in findings; defaults to ``str(path)``.
        max_bytes: Largest accepted file size in bytes.
        max_aliases: Most ``*alias`` references accepted.
        max_nodes: Most values accepted, counting every expansion of an alias.
        max_depth: Deepest accepted nesting of lists and mappings.

    Returns:
        The plain data and the marks of its values and keys.

    Raises:
        ScriptError: On any problem, with findings located at ``file:line:col``.
    """
    file = str(path) if display_name is None else display_name
    raw = read_regular(path, file=file, max_bytes=max_bytes)
    return _load(raw, file, _Limits(max_bytes, max_aliases, max_nodes, max_depth))


def read_regular(path: Path, *, file: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read at most ``max_bytes + 1`` bytes of a regular file (a link to one counts).

    Anything else — a named pipe, which would block forever, a socket, a device, a folder —
    is refused without being opened (opening some devices has effects of its own). The file
    is opened non-blocking and checked again once open, so a swap in between is refused too.

    Args:
        path: The file.
        file: Its name in findings.
        max_bytes: The most bytes wanted; one more is read, to tell a file over the limit.

    Raises:
        ScriptError: If the file is not a regular file or cannot be read, at ``file:1:1``.
    """
    where = Mark(file, 1, 1)
    try:
        _refuse_special(os.stat(path).st_mode, where)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with open(fd, "rb") as stream:
            _refuse_special(os.fstat(fd).st_mode, where)
            return stream.read(max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        _fail(Finding.error(where, "yaml-unreadable", f"cannot read the file: {reason}"))


def file_kind(path: Path) -> str | None:
    """What ``path`` is if it is no regular file (e.g. ``"a named pipe"``), else None.

    Links are followed; nothing is opened.

    Raises:
        OSError: If the file cannot be looked at (FileNotFoundError: it does not exist).
    """
    return _special_kind(os.stat(path).st_mode)


_SPECIAL_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _special_kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _SPECIAL_KINDS if test(mode)), "a special file")


def _refuse_special(mode: int, where: Mark) -> None:
    kind = _special_kind(mode)
    if kind is None:
        return
    message = f"this is {kind}, not a regular file; only regular files are read"
    _fail(Finding.error(where, "yaml-not-a-file", message))


def load_yaml_text(
    text_or_bytes: str | bytes,
    *,
    file: str,
    max_bytes: int = MAX_FILE_BYTES,
    max_aliases: int = 50,
    max_nodes: int = 200_000,
    max_depth: int = 64,
) -> LoadedYaml:
    """Load YAML from memory, exactly as :func:`load_yaml` loads a file.

    Args:
        text_or_bytes: The document; text is measured by its UTF-8 size.
        file: The name to report in findings.
        max_bytes: Largest accepted size in bytes.
        max_aliases: Most ``*alias`` references accepted.
        max_nodes: Most values accepted, counting every expansion of an alias.
        max_depth: Deepest accepted nesting of lists and mappings.

    Returns:
        The plain data and the marks of its values and keys.

    Raises:
        ScriptError: On any problem, with findings located at ``file:line:col``.
    """
    raw = (
        text_or_bytes.encode("utf-8", "surrogatepass")
        if isinstance(text_or_bytes, str)
        else text_or_bytes
    )
    return _load(raw, file, _Limits(max_bytes, max_aliases, max_nodes, max_depth))


def _load(raw: bytes, file: str, limits: _Limits) -> LoadedYaml:
    # Parsing allocates many small, acyclic objects; the cyclic garbage collector only slows
    # it down (about 40% on large scripts). Memory stays bounded by the size limits.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_bounded(raw, file, limits)
    finally:
        if enabled:
            gc.enable()


def _load_bounded(raw: bytes, file: str, limits: _Limits) -> LoadedYaml:
    if len(raw) > limits.max_bytes:
        message = f"the file is larger than the limit of {limits.max_bytes:,} bytes; shorten it"
        _fail(Finding.error(Mark(file, 1, 1), "yaml-too-large", message))
    text = _decode(raw, file)
    root, findings = _compose(text, file, limits)
    builder = _Builder(file, limits)
    try:
        data = builder.build(root)
    except _Abort as abort:
        findings = [*findings, *builder.findings, abort.finding]
    except RecursionError:
        findings = [*findings, *builder.findings, _too_deep(Mark(file, 1, 1), None)]
    else:
        findings = [*findings, *builder.findings]
    if findings:
        _fail(*findings)
    marks = builder.value_marks or {(): Mark(file, 1, 1)}
    return LoadedYaml(data, marks, builder.key_marks, file, len(raw))


# --- bytes and text -------------------------------------------------------------------------


def _decode(raw: bytes, file: str) -> str:
    """Decode UTF-8 (an optional BOM is dropped), refusing binary and odd characters."""
    raw = raw.removeprefix(_BOM)
    binary = _BINARY.search(raw)
    if binary is not None:
        line, col = _position(raw[: binary.start()].decode("utf-8", "replace"))
        message = (
            f"the file contains the control byte 0x{raw[binary.start()]:02X}; "
            "it does not look like a text file (save the script as plain UTF-8 text)"
        )
        _fail(Finding.error(Mark(file, line, col), "yaml-binary", message))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(raw[: exc.start].decode("utf-8"))
        message = f"byte 0x{raw[exc.start]:02X} is not valid UTF-8; save the file as UTF-8"
        _fail(Finding.error(Mark(file, line, col), "yaml-encoding", message))
    odd = _UNPRINTABLE.search(text)
    if odd is not None:
        line, col = _position(text[: odd.start()])
        message = f"the character U+{ord(odd.group()):04X} is not allowed in a script; remove it"
        _fail(Finding.error(Mark(file, line, col), "yaml-binary", message))
    disguise = _DISGUISE.search(text)
    if disguise is not None:
        line, col = _position(text[: disguise.start()])
        _fail(Finding.error(Mark(file, line, col), "yaml-disguise",
                            _disguise_message(disguise.group())))
    return text


def _disguise_message(char: str, *, escaped: bool = False) -> str:
    what = f"U+{ord(char):04X} ({_DISGUISING[char]})"
    written = f"an escape in this text writes the invisible character {what}" if escaped else (
        f"the invisible character {what} is not allowed")
    return (f"{written}: it can make a text look different to a client from how it reads "
            "here; remove it")


def _escape_problem(value: str) -> tuple[str, str] | None:
    """What an escape in double-quoted text wrote that the file itself may not hold."""
    odd = _UNPRINTABLE.search(value)
    if odd is not None:
        message = (f"an escape in this text writes the character U+{ord(odd.group()):04X}, "
                   "which is not allowed in a script; remove it")
        return "yaml-binary", message
    disguise = _DISGUISE.search(value)
    if disguise is not None:
        return "yaml-disguise", _disguise_message(disguise.group(), escaped=True)
    return None


def _position(prefix: str) -> tuple[int, int]:
    """Return the 1-based line and column just after ``prefix``, counting as PyYAML does."""
    line, line_start = 1, 0
    for match in _LINE_BREAK.finditer(prefix):
        line, line_start = line + 1, match.end()
    return line, len(prefix) - line_start + 1


# --- composing the node tree ----------------------------------------------------------------


class _AliasNode(Node):
    """An ``*alias`` left unexpanded; ``value`` is the anchored node it refers to."""

    def __init__(self, anchor: str, target: Node, event: AliasEvent) -> None:
        super().__init__(_IMPLICIT, target, event.start_mark, event.end_mark)  # type: ignore[arg-type]
        self.anchor = anchor


class _Composer(yaml.SafeLoader):
    """PyYAML's safe composer that never resolves types and enforces the limits early."""

    def __init__(self, text: str, file: str, limits: _Limits) -> None:
        super().__init__(text)
        self.file = file
        self.limits = limits
        self.findings: list[Finding] = []
        self._aliases = 0
        self._nodes = 0
        self._depth = 0

    def resolve(self, kind: type[Node], value: str | None, implicit: object) -> str:
        """Tag untagged nodes as implicit; the builder decides their types itself."""
        return _IMPLICIT

    def compose_single(self) -> Node | None:
        """Compose the only document of the stream, or return None for an empty stream."""
        self._next_event()  # stream start
        if self.check_event(StreamEndEvent):
            return None
        root = self.compose_document()
        if not self.check_event(StreamEndEvent):
            message = "the file contains a second YAML document ('---'); keep one script per file"
            raise _Abort(self._finding(self._next_event().start_mark, "yaml-multi-doc", message))
        return root

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Compose one node, counting it against the limits and checking its tag."""
        event = self._peek_event()
        self._count(event)
        if isinstance(event, AliasEvent):
            self._next_event()
            return self._alias(event)
        self._check_anchor(event)
        self._check_tag(event)
        self._check_escapes(event)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _peek_event(self) -> AliasEvent | ScalarEvent | CollectionStartEvent:
        return self.peek_event()  # type: ignore[no-untyped-call,no-any-return]

    def _next_event(self) -> Event:
        return self.get_event()  # type: ignore[no-untyped-call,no-any-return]

    def _count(self, event: AliasEvent | ScalarEvent | CollectionStartEvent) -> None:
        self._nodes += 1
        if self._nodes > self.limits.max_nodes:
            message = _too_many(self.limits)
            raise _Abort(self._finding(event.start_mark, "yaml-too-many-nodes", message))
        if self._depth > self.limits.max_depth:
            where = _mark(self.file, event.start_mark)
            raise _Abort(_too_deep(where, self.limits.max_depth))

    def _alias(self, event: AliasEvent) -> Node:
        self._aliases += 1
        if self._aliases > self.limits.max_aliases:
            message = (
                f"the file uses more than {self.limits.max_aliases} aliases (*name); "
                "write the values out instead"
            )
            raise _Abort(self._finding(event.start_mark, "yaml-aliases", message))
        anchor = quoted(event.anchor or "")
        target = self.anchors.get(event.anchor or "")
        if target is None:
            message = f"the alias *{anchor} refers to no anchor; define &{anchor} before it"
            self.findings.append(self._finding(event.start_mark, "yaml-syntax", message))
            target = ScalarNode(_STR_TAG, "", event.start_mark, event.end_mark)  # type: ignore[arg-type]
        return _AliasNode(anchor, target, event)

    def _check_anchor(self, event: ScalarEvent | CollectionStartEvent) -> None:
        first = self.anchors.pop(event.anchor, None) if event.anchor is not None else None
        if first is not None:
            line = _mark(self.file, first.start_mark).line
            anchor = quoted(event.anchor or "")
            message = f"the anchor &{anchor} is already defined on line {line}; rename one"
            self.findings.append(self._finding(event.start_mark, "yaml-syntax", message))

    def _check_escapes(self, event: ScalarEvent | CollectionStartEvent) -> None:
        """Refuse double-quoted text whose escapes write what the file itself may not hold."""
        if not isinstance(event, ScalarEvent) or event.style != '"':
            return
        problem = _escape_problem(event.value)
        if problem is not None:
            self.findings.append(self._finding(event.start_mark, *problem))

    def _check_tag(self, event: ScalarEvent | CollectionStartEvent) -> None:
        tag = event.tag
        if tag is None or (tag == _STR_TAG and isinstance(event, ScalarEvent)):
            return
        shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:") else tag
        message = f"the tag {quoted(shown)} is not allowed; remove it (only plain YAML values are)"
        self.findings.append(self._finding(event.start_mark, "yaml-tag", message))

    def _finding(self, mark: object, code: str, message: str) -> Finding:
        return Finding.error(_mark(self.file, mark), code, message)


def _compose(text: str, file: str, limits: _Limits) -> tuple[Node | None, list[Finding]]:
    """Compose the node tree of ``text``, collecting the problems found on the way."""
    composer: _Composer | None = None
    try:
        composer = _Composer(text, file, limits)
        return composer.compose_single(), composer.findings
    except _Abort as abort:
        problem = abort.finding
    except yaml.MarkedYAMLError as exc:
        problem = _syntax_finding(file, exc)
    except RecursionError:
        problem = _too_deep(_current_mark(file, composer), None)
    except Exception as exc:  # any other PyYAML failure is still reported, never raised
        message = f"the file could not be read as YAML ({type(exc).__name__})"
        problem = Finding.error(_current_mark(file, composer), "yaml-syntax", message)
    _fail(*(composer.findings if composer is not None else []), problem)


# --- building plain data --------------------------------------------------------------------


@dataclass(slots=True)
class _Builder:
    """Builds plain data from a node tree, expanding aliases within the limits."""

    file: str
    limits: _Limits
    findings: list[Finding] = field(default_factory=list)
    value_marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    open_collections: set[int] = field(default_factory=set)

    def build(self, root: Node | None) -> object:
        """Return the plain data of the document ``root`` (None for an empty file)."""
        if root is None:
            return None
        if _expanded_size(root, {}) > self.limits.max_nodes:
            raise _Abort(self._finding(root, "yaml-too-many-nodes", _too_many(self.limits)))
        return self.value(root, ())

    def value(self, node: Node, path: Path_) -> object:
        """Return the plain value of ``node``, recording its mark under ``path``."""
        self.value_marks.setdefault(path, _mark(self.file, node.start_mark))
        if isinstance(node, _AliasNode):
            if id(node.value) in self.open_collections:
                anchor = quoted(node.anchor)
                message = f"the alias *{anchor} is used inside its own anchor; remove it"
                self.findings.append(self._finding(node, "yaml-aliases", message))
                return None
            node = node.value
        if len(path) > self.limits.max_depth:
            where = _mark(self.file, node.start_mark)
            raise _Abort(_too_deep(where, self.limits.max_depth))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        self.open_collections.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self.open_collections.discard(id(node))

    def _sequence(self, node: SequenceNode, path: Path_) -> list[object]:
        return [self.value(item, (*path, index)) for index, item in enumerate(node.value)]

    def _mapping(self, node: MappingNode, path: Path_) -> dict[str, object]:
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is None:
                continue
            if key in result:
                first = self.key_marks[(*path, key)].line
                message = (f'the key "{quoted(key)}" appears twice; '
                           f"it was first used on line {first}")
                self.findings.append(self._finding(key_node, "yaml-duplicate-key", message))
                continue
            self.key_marks[(*path, key)] = _mark(self.file, key_node.start_mark)
            result[key] = self.value(value_node, (*path, key))
        return result

    def _key(self, node: Node) -> str | None:
        """Return a mapping key as text, or None (with a finding) if it cannot be one."""
        target = node.value if isinstance(node, _AliasNode) else node
        if not isinstance(target, ScalarNode):
            message = "a key must be plain text, not a list or a mapping"
            self.findings.append(self._finding(node, "yaml-key-type", message))
            return None
        if target.value == "<<" and target.style is None and target.tag == _IMPLICIT:
            message = "merge keys (<<) are not supported; repeat the keys instead"
            self.findings.append(self._finding(node, "yaml-merge", message))
            return None
        return str(target.value)

    def _finding(self, node: Node, code: str, message: str) -> Finding:
        return Finding.error(_mark(self.file, node.start_mark), code, message)


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """Count the values ``node`` stands for, every alias as a full copy, without expanding.

    Sizes are memoised by node identity, so an alias bomb is measured in linear time.
    A node met again while it is being counted is a cycle: it counts 0 here and is
    reported by the builder.
    """
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 0
    if isinstance(node, _AliasNode):
        size = _expanded_size(node.value, sizes)
    elif isinstance(node, SequenceNode):
        size = 1 + sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, MappingNode):
        size = 1 + sum(_expanded_size(value, sizes) for _, value in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    return size


def _scalar(node: ScalarNode) -> object:
    """Return a scalar's value: quoted, block and ``!!str`` scalars are always text."""
    text = str(node.value)
    if node.style is not None or node.tag != _IMPLICIT:
        return text
    return _plain(text)


def _plain(text: str) -> object:
    """Resolve a plain scalar: null, true/false, decimal int and float; all else is text."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.fullmatch(text) and len(text) <= _MAX_INT_CHARS:
        return int(text)
    if _FLOAT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


# --- findings -------------------------------------------------------------------------------


def _fail(*findings: Finding) -> NoReturn:
    raise ScriptError(sorted(findings, key=lambda f: (f.line, f.col)))


def _mark(file: str, mark: object) -> Mark:
    """Convert a 0-based PyYAML mark (or None) into a 1-based :class:`Mark`."""
    line, column = getattr(mark, "line", 0), getattr(mark, "column", 0)
    return Mark(file, int(line) + 1, int(column) + 1)


def _too_deep(where: Mark, limit: int | None) -> Finding:
    levels = f"more than {limit} levels" if limit is not None else "too"
    return Finding.error(where, "yaml-too-deep", f"lists and mappings are nested {levels} deep")


def _current_mark(file: str, composer: _Composer | None) -> Mark:
    """Return where the composer stopped reading, or 1:1 if it never started."""
    return _mark(file, composer.get_mark() if composer is not None else None)


def _too_many(limits: _Limits) -> str:
    return (
        f"the file holds more than {limits.max_nodes:,} values "
        "(counting every use of an alias); split or shorten it"
    )


_SYNTAX_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"found character '\\t' that cannot start any token"),
        "tabs are not allowed for indentation; use spaces (also after ':' and '-')",
    ),
    (
        re.compile(r"found character (.+) that cannot start any token"),
        "a value cannot start with {0}; put the whole value in quotes",
    ),
    (
        re.compile(r"found unexpected end of stream"),
        "the file ends too early; is a closing quote or bracket missing?",
    ),
    (
        re.compile(r"found unknown escape character '(.+)'"),
        "unknown escape \\{0} in double-quoted text; write \\\\ for a backslash or use '...'",
    ),
    (
        re.compile(r"mapping values are not allowed here"),
        "unexpected ':'; if the text itself contains ': ', put the whole value in quotes",
    ),
    (re.compile(r"could not find expected ':'"), "expected 'key: value' here; the ':' is missing"),
    (
        re.compile(r"expected (?:<block end>|'<document start>'), but found .*"),
        "this line does not fit the lines above; check its indentation",
    ),
    (
        re.compile(r"expected ',' or '([\]}])', but got .*"),
        "expected ',' or '{0}' here; is a bracket not closed?",
    ),
    (re.compile(r"expected the node content, but found (.+)"), "expected a value, found {0}"),
)

_CONTEXT_NOUNS = {
    "quoted scalar": "quoted text",
    "double-quoted scalar": "quoted text",
    "block scalar": "block text",
    "flow sequence": "[...] list",
    "flow mapping": "{...} mapping",
    "block mapping": "mapping",
    "block collection": "list or mapping",
    "simple key": "key",
}


def _syntax_finding(file: str, exc: yaml.MarkedYAMLError) -> Finding:
    """Turn a PyYAML syntax error into a plain-language finding at its problem mark."""
    where = _mark(file, exc.problem_mark or exc.context_mark)
    message = _rephrase(exc.problem or exc.context or "unknown problem")
    context = re.fullmatch(r"while (?:scanning|parsing) an? (.+)", exc.context or "")
    if context is not None and exc.context_mark is not None:
        noun = _CONTEXT_NOUNS.get(context.group(1), context.group(1))
        message += f" (in the {noun} starting on line {exc.context_mark.line + 1})"
    return Finding.error(where, "yaml-syntax", message)


def _rephrase(problem: str) -> str:
    for pattern, template in _SYNTAX_MESSAGES:
        match = pattern.fullmatch(problem)
        if match is not None:
            return template.format(*match.groups())
    return f"YAML syntax error: {problem}"
