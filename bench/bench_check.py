"""How ``rehearse check`` scales: load and check generated scripts of growing size.

Run ``python -m bench.bench_check``. For 200, 2,000 and 20,000 steps it writes a valid script
with a realistic mix of step kinds (units of ten steps: a say, a check-in, a prompt, an ask, a
set, a branch, an exercise, a role-play or a connection note, an after check-in; about a third
of the texts use a variable, the rest are plain), then times :func:`load_script` and
:func:`check_script` separately, best of three, and prints a table and the per-step cost of
the largest script relative to the smallest (1.0 means perfectly linear).

The loader refuses files over 1 MB or 200,000 values; the 20,000-step script is larger, so for
that size only the limits are raised (the code path is the same).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

from bot.check import check_script
from bot.render import Renderer
from bot.script import Severity, load_script
from bot.script import _load as loader
from bot.script._yaml import load_yaml

SIZES = (200, 2_000, 20_000)
REPEATS = 3
_TOPICS = ("likes", "daily-life", "feelings", "needs")

_HEADER = """\
script:
  id: bench-{steps}
  title: Benchmark script
  version: 1
  author: bench
  level: 3
  summary: A generated script for timing the checker.
  calm: [breathe]
exercises:
  - id: breathe
    title: Paced breathing
    kind: breathing
    pages:
      - say: Breathe in for 4 and out for 6.
      - say: "Well done, {{{{ name }}}}."
prompts:
"""


def _prompts() -> Iterator[str]:
    for topic in _TOPICS:
        for level in (1, 2, 3):
            yield (f"  - id: {topic}-{level}\n    level: {level}\n    topic: {topic}\n"
                   f"    text: Share something about {topic} at level {level}.\n"
                   f"    smaller: Share one word about {topic}.\n")


def _unit(i: int) -> str:
    """Ten steps; the role-play alternates with a connection note."""
    name = " {{ name }}" if i % 3 == 0 else ""
    middle = (
        f"  - id: u{i}-scene\n    roleplay:\n      character: Sam\n      practises: disclosing\n"
        f"      scene: Sam asks about part {i}.\n      turns:\n"
        f"        - says: How was part {i}?\n          example: It went fine, thanks.\n"
        f"          smaller: Good?\n"
        if i % 2 == 0
        else f"  - id: u{i}-scene\n    connection: Note a moment of connection from part {i}.\n"
    )
    return (
        f"  - id: u{i}-intro\n    say: Part {i}. Take your time{name}.\n"
        f"  - id: u{i}-check\n    checkin:\n      moment: before\n"
        f"  - id: u{i}-prompt\n    prompt:\n      topic: {_TOPICS[i % 4]}\n"
        f"  - id: u{i}-ask\n    ask:\n      text: Part {i}. Go on or take a smaller step?\n"
        f"      save_as: pace\n      choices:\n"
        f"        - label: Go on\n          value: on\n          goto: u{i}-scene\n"
        f"        - label: Smaller\n          value: small\n"
        f"  - id: u{i}-set\n    set:\n      part: {i}\n"
        f"  - id: u{i}-branch\n    branch:\n      - if: distress >= 7\n        goto: u{i}-calm\n"
        f"      - goto: u{i}-scene\n"
        f"  - id: u{i}-calm\n    exercise: breathe\n"
        f"{middle}"
        f"  - id: u{i}-note\n    say: You finished part {i}{name}.\n"
        f"  - id: u{i}-after\n    checkin:\n      moment: after\n"
    )


def generate(steps: int) -> str:
    """A valid script of ``steps`` steps (rounded down to whole units, plus the end)."""
    units = "".join(_unit(i) for i in range(steps // 10))
    closing = "  - id: closing\n    end: That's all for today, {{ name }}.\n"
    return _HEADER.format(steps=steps) + "".join(_prompts()) + "steps:\n" + units + closing


def _best(work: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(steps: int, directory: Path) -> tuple[float, float]:
    """Best-of-three seconds to load and to check a generated script of ``steps`` steps."""
    path = directory / f"bench-{steps}.yaml"
    path.write_text(generate(steps), encoding="utf-8")
    big = functools.partial(load_yaml, max_bytes=50_000_000, max_nodes=5_000_000)
    with mock.patch.object(loader, "load_yaml", big):
        script = load_script(path)
        load_seconds = _best(lambda: load_script(path))
    errors = [f for f in check_script(script, Renderer({})) if f.severity is Severity.ERROR]
    assert not errors, errors[:3]
    check_seconds = _best(lambda: check_script(script, Renderer({})))
    return load_seconds, check_seconds


def main() -> None:
    """Print the table of load and check times."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 and 2,000 steps only (a smoke run for the test suite)")
    sizes = SIZES[:2] if parser.parse_args().quick else SIZES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for steps in sizes:
            rows.append((steps, *measure(steps, Path(tmp))))
    print(f"{'steps':>7} {'load s':>8} {'check s':>8} {'total s':>8} {'µs/step':>8}")
    for steps, load, check in rows:
        total = load + check
        print(f"{steps:>7,} {load:>8.3f} {check:>8.3f} {total:>8.3f} {total / steps * 1e6:>8.1f}")
    (small, *_), (large, *_) = rows[0], rows[-1]
    ratio = (sum(rows[-1][1:]) / large) / (sum(rows[0][1:]) / small)
    print(f"per-step cost, {large:,} vs {small:,} steps: {ratio:.2f}x (1.00 = linear)")


if __name__ == "__main__":
    main()
