"""Tests for the renderer: sandbox, escaping, bounds, Telegram HTML and template checks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from markupsafe import Markup

from bot.render import (
    MAX_MESSAGE_LENGTH,
    Renderer,
    RenderError,
    TemplateProblem,
    check_texts,
    plain_text,
    visible_length,
)


@pytest.fixture
def renderer() -> Renderer:
    return Renderer({"greet": "Hello <b>{{ name }}</b>.", "buttons.ok": "OK & go"})


def codes(problems: list[TemplateProblem]) -> list[str]:
    return [p.code for p in problems]


# --- rendering ------------------------------------------------------------------------------


def test_values_are_escaped_and_template_tags_kept(renderer: Renderer) -> None:
    out = renderer.system("greet", name='<i>Jo</i> & "O\'Neil"')
    assert out == "Hello <b>&lt;i&gt;Jo&lt;/i&gt; &amp; &#34;O&#39;Neil&#34;</b>."
    assert plain_text(out) == 'Hello <i>Jo</i> & "O\'Neil".'


def test_rendered_text_composes_without_double_escaping(renderer: Renderer) -> None:
    line = renderer.text("{{ said }}", {"said": "a & b"})
    assert isinstance(line, Markup)
    assert renderer.text("<b>Sam:</b> {{ line }}", {"line": line}) == "<b>Sam:</b> a &amp; b"


def test_trim_blocks_and_outer_whitespace() -> None:
    source = "Items:\n{% for x in xs %}\n- {{ x }}\n{% endfor %}\n"
    assert Renderer({}).text(source, {"xs": [1, 2]}) == "Items:\n- 1\n- 2"


def test_unknown_system_key_suggests_a_close_one(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="did you mean `greet`"):
        renderer.system("gret")


def test_missing_variable_is_an_error_with_its_line(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="missing variable") as caught:
        renderer.text("first\nsecond {{ nope }}", {})
    assert caught.value.line == 2


def test_labels_are_plain_text(renderer: Renderer) -> None:
    assert renderer.label("buttons.ok") == "OK & go"
    assert renderer.system("buttons.ok") == "OK &amp; go"
    with pytest.raises(RenderError, match="at most 40"):
        Renderer({"buttons.long": "x" * 41}).label("buttons.long")


def test_compiled_templates_are_cached_by_source(renderer: Renderer) -> None:
    renderer.text("{{ a }}", {"a": 1})
    renderer.text("{{ a }}", {"a": 2})
    info = renderer._compile.cache_info()
    assert (info.hits, info.misses) == (1, 1)


def test_bad_system_text_fails_at_construction_listing_every_key() -> None:
    with pytest.raises(RenderError) as caught:
        Renderer({"a": "{% if %}", "b": "{{ x|safe }}", "c": "fine"})
    assert "a: line 1" in str(caught.value)
    assert "b: line 1" in str(caught.value)
    assert "c:" not in str(caught.value)


# --- length ---------------------------------------------------------------------------------


def test_too_long_is_refused() -> None:
    renderer = Renderer({})
    assert len(renderer.text("{{ x }}", {"x": "a" * MAX_MESSAGE_LENGTH})) == MAX_MESSAGE_LENGTH
    with pytest.raises(RenderError, match="Telegram allows 4,096"):
        renderer.text("{{ x }}", {"x": "a" * (MAX_MESSAGE_LENGTH + 1)})


def test_length_counts_what_telegram_counts() -> None:
    # Tags do not count, an entity counts once, an emoji outside the BMP counts twice.
    assert visible_length("<b>a&amp;b</b>😀") == 5
    renderer = Renderer({}, max_length=10)
    assert renderer.text("<b>{{ x }}</b>", {"x": "&" * 10}) == "<b>" + "&amp;" * 10 + "</b>"


def test_a_runaway_loop_stops_early() -> None:
    started = time.process_time()
    with pytest.raises(RenderError, match=r"far too long|Telegram allows"):
        Renderer({}).text("{% for i in range(1000) %}{{ 'abcdefghij' * 100 }}{% endfor %}", {})
    assert time.process_time() - started < 2


# --- sandbox bounds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ("{% for i in range(10**9) %}x{% endfor %}", {}),
        ("{% for i in range(5000) %}{% endfor %}", {}),
        ("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}", {}),
        ("{% for a in t %}{% for b in t %}{% for c in t %}{% endfor %}{% endfor %}{% endfor %}",
         {"t": "x" * 4000}),
        ("{{ 'x' * n }}", {"n": 10**9}),
        ("{{ [0] * n }}", {"n": 10**9}),
        ("{{ 2 ** 100000 }}", {}),
        ("{{ 2**128**128**128 }}", {}),
        ("{% set a = 'xxxxxxxxxx' %}" + "{% set a = a ~ a %}" * 40 + "{{ a|length }}", {}),
        ("{% set a = 'xxxxxxxxxx' %}" + "{% set a = a + a %}" * 40 + "{{ a|length }}", {}),
        ("{{ 'x'.ljust(10**9) }}", {}),
        ("{{ '{:>999999999}'.format(1) }}", {}),
        ("{{ '%999999999s' % 'x' }}", {}),
        ("{{ x|replace('a', 'aaaaaaaaaa')|replace('a', 'aaaaaaaaaa')|replace('a', 'aa') }}",
         {"x": "a" * 1000}),
        ("{{ [1]|tojson(indent=10**6) }}", {}),
        ("{{ ''.__class__ }}", {}),
        ("{{ x.__class__.__mro__ }}", {"x": 1}),
        ("{{ lipsum(10**6) }}", {}),
    ],
)  # fmt: skip
def test_sandbox_refuses_runaway_and_unsafe_templates(
    source: str, context: dict[str, object]
) -> None:
    started = time.process_time()
    with pytest.raises(RenderError):
        Renderer({}).text(source, context)
    assert time.process_time() - started < 2


def test_sandbox_keeps_ordinary_expressions_working() -> None:
    source = (
        "{{ 7 % 3 }} {{ 2 ** 10 }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ range(3)|list }} "
        "{{ names|join(', ') }} {{ n|default(0) }} {{ 'x'|upper }} {{ d.get('k', '-') }}"
        "{% for x in [1, 2, 3] if x > 1 %} {{ loop.index }}:{{ x }}{% endfor %}"
    )
    out = Renderer({}).text(source, {"names": ["A", "B"], "n": None, "d": {}})
    assert out == "1 1024 abab [1, 2] [0, 1, 2] A, B None X - 1:2 2:3"


def test_immutable_sandbox_forbids_mutation() -> None:
    with pytest.raises(RenderError, match=r"not allowed|unsafe"):
        Renderer({}).text("{{ xs.append(1) }}", {"xs": []})


def test_the_budget_is_per_render() -> None:
    renderer = Renderer({})
    source = "{% for i in range(1000) %}{% for j in range(9) %}{% endfor %}{% endfor %}ok"
    for _ in range(3):
        assert renderer.text(source, {}) == "ok"


# --- Telegram HTML --------------------------------------------------------------------------


def test_stray_characters_and_unknown_tags_are_escaped() -> None:
    out = Renderer({}).text("Tom & Jerry <3 <br> a > b &amp; &#39; &nbsp;", {})
    assert out == "Tom &amp; Jerry &lt;3 &lt;br&gt; a &gt; b &amp; &#39; &amp;nbsp;"


def test_unbalanced_tags_are_repaired() -> None:
    renderer = Renderer({})
    assert renderer.text("<b>bold <i>both</b> i", {}) == "<b>bold <i>both&lt;/b&gt; i</i></b>"
    assert renderer.text("a</b>", {}) == "a&lt;/b&gt;"
    assert renderer.text('<a href="https://x.org">x</a>', {}) == '<a href="https://x.org">x</a>'


# --- check ----------------------------------------------------------------------------------


def test_check_reports_syntax_errors_with_line() -> None:
    [problem] = Renderer({}).check("fine\n{% if %}", set())
    assert (problem.line, problem.code) == (2, "template-syntax")


@pytest.mark.parametrize(
    "source",
    [
        "{{ x|safe }}",
        "{% filter safe %}{{ x }}{% endfilter %}",
        "{% autoescape false %}{{ x }}{% endautoescape %}",
        "{% include 'other.txt' %}",
        "{% import 'm.txt' as m %}",
        "{% from 'm.txt' import a %}",
        "{% extends 'base.txt' %}",
        "{% macro m() %}hi{% endmacro %}",
        "{% for y in x recursive %}{{ loop(x) }}{% endfor %}",
        "{{ ''.__class__ }}",
        "{{ x['__class__'] }}",
        "{{ x|attr('__class__') }}",
        "{{ x|random }}",
        "{{ x|center(80) }}",
        "{{ x|_rehearse_loop }}",
    ],
)
def test_check_reports_unsafe_constructs(source: str) -> None:
    assert "template-unsafe" in codes(Renderer({}).check(source, {"x"}))


def test_unsafe_constructs_are_refused_at_render_time_too() -> None:
    with pytest.raises(RenderError, match="safe"):
        Renderer({}).text("{{ x|safe }}", {"x": "<b>"})


def test_check_reports_unknown_variables_with_a_suggestion() -> None:
    problems = Renderer({}).check("Hi {{ nmae }}\n{{ loop }}", {"name"})
    assert [(p.line, p.code) for p in problems] == [
        (1, "template-unknown-variable"),
        (2, "template-unknown-variable"),
    ]
    assert "did you mean `name`" in problems[0].message


def test_check_accepts_declared_and_loop_variables() -> None:
    source = "{% set n = xs|length %}{% for x in xs %}{{ loop.index }}{{ x }}{% endfor %}{{ n }}"
    assert Renderer({}).check(source, {"xs"}) == []


def test_check_reports_unknown_filters_and_html_slips() -> None:
    problems = Renderer({}).check("{{ x|nosuch }}\n<br>\n<b>open", {"x"})
    assert [(p.line, p.code) for p in problems] == [
        (1, "template-syntax"),
        (2, "template-html"),
        (3, "template-html"),
    ]


# --- texts files ----------------------------------------------------------------------------


def write_texts(root: Path, locale: str, body: str) -> None:
    (root / locale).mkdir(parents=True, exist_ok=True)
    (root / locale / "texts.yaml").write_text(body, encoding="utf-8")


def test_from_dir_falls_back_to_english_per_key(tmp_path: Path) -> None:
    write_texts(tmp_path, "en", "help: |\n  Help\nreminder: Practice?\n")
    write_texts(tmp_path, "de", "help: |\n  Hilfe\n")
    renderer = Renderer.from_dir(tmp_path, "de")
    assert renderer.system("help") == "Hilfe"
    assert renderer.system("reminder") == "Practice?"


def test_from_dir_reports_yaml_problems(tmp_path: Path) -> None:
    write_texts(tmp_path, "en", "help: |\n  a\nhelp: |\n  b\n")
    with pytest.raises(RenderError, match="appears twice"):
        Renderer.from_dir(tmp_path)
    write_texts(tmp_path, "en", "help: [1]\n")
    with pytest.raises(RenderError, match="must be text"):
        Renderer.from_dir(tmp_path)


def test_check_texts_locates_problems_in_the_file(tmp_path: Path) -> None:
    write_texts(
        tmp_path,
        "en",
        'help: |\n  fine\n  {{ nope }}\nreminder: "{{ x|safe }}"\nhelpp: x\nbuttons.yes: |\n'
        + "  "
        + "y" * 41
        + "\n",
    )
    findings = {(f.code, f.line) for f in check_texts(tmp_path)}
    assert ("template-unknown-variable", 3) in findings
    assert ("template-unsafe", 4) in findings
    assert ("texts-unknown-key", 5) in findings
    assert ("texts-render", 6) in findings
    assert ("texts-missing", 1) in findings


def test_check_texts_warns_for_untranslated_keys(tmp_path: Path) -> None:
    write_texts(tmp_path, "en", "help: Help\n")
    write_texts(tmp_path, "de", "reminder: Übung?\n")
    by_key = {f.message.split("`")[1]: f for f in check_texts(tmp_path, "de")}
    assert by_key["help"].severity == "warning"
    assert by_key["consent.intro"].severity == "error"
