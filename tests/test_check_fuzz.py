"""Property test: ``check_paths`` turns any mangled script into findings and never raises."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.check import check_paths

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "scripts").glob("*.yaml"))
#: Read once, so that every example of a run starts from the same texts.
TEXTS = {path.name: path.read_text(encoding="utf-8") for path in SCRIPTS}
_VALUE = re.compile(r"^(\s*(?:- )?[a-z_]+: )(.+)$")
_NASTY_VALUES = ("yes", "no", "on", "12:30", "{{ x", "{% if %}", "!!python/object:os.system",
                 "*alias", "&anchor", "[", "{", "'", '"', "|", ">", "~", "-1", "1e999", "0x1F",
                 "{{ ''.__class__.__mro__ }}", "\t", "next", "")  # fmt: skip

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_scalar = st.one_of(st.sampled_from(_NASTY_VALUES), _text,
                    st.integers(-(10**12), 10**12).map(str))


@st.composite
def _mutation(draw: st.DrawFn, lines: list[str]) -> list[str]:
    """One random edit of a script's lines."""
    if not lines:
        return [draw(_text)]
    at = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(
        ("delete", "duplicate", "swap", "indent", "scalar", "truncate", "insert")))
    out = list(lines)
    if kind == "delete":
        del out[at]
    elif kind == "duplicate":
        out.insert(at, out[at])
    elif kind == "swap":
        other = draw(st.integers(0, len(lines) - 1))
        out[at], out[other] = out[other], out[at]
    elif kind == "indent":
        shift = draw(st.sampled_from((-2, -1, 1, 2)))
        out[at] = " " * shift + out[at] if shift > 0 else out[at][-shift:]
    elif kind == "scalar":
        match = _VALUE.match(out[at])
        out[at] = match.group(1) + draw(_scalar) if match else out[at] + draw(_scalar)
    elif kind == "truncate":
        out = out[:at]
    else:
        out.insert(at, draw(_text))
    return out


@st.composite
def mangled_scripts(draw: st.DrawFn) -> tuple[str, str]:
    """A shipped script's name and its text after one to three random edits."""
    name = draw(st.sampled_from(sorted(TEXTS)))
    lines = TEXTS[name].splitlines()
    for _ in range(draw(st.integers(1, 3))):
        lines = draw(_mutation(lines))
    return name, "\n".join(lines) + draw(st.sampled_from(("\n", "")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled_scripts())
def test_mangled_scripts_only_ever_give_located_findings(case: tuple[str, str]) -> None:
    name, text = case
    with tempfile.TemporaryDirectory() as tmp:
        for other, original in TEXTS.items():  # the included library stays available
            (Path(tmp) / other).write_text(original, encoding="utf-8")
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        findings = check_paths([path])
    for finding in findings:
        assert finding.line >= 1 and finding.col >= 1, finding
        assert re.fullmatch(r"[a-z0-9-]+", finding.code), finding
        assert finding.code != "internal", finding
        assert finding.message
