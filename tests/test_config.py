"""Tests for configuration loading: defaults, strictness, located errors and secrets."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.yaml"
TOKEN = "123456:TEST-token_x"
#: A token shaped exactly as @BotFather gives one.
REAL_TOKEN = "1234567890:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_lines(tmp_path: Path, text: str) -> list[str]:
    """Load ``text`` expecting failure; return the messages with the file name shortened."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return [m.replace(str(path), "config.yaml") for m in caught.value.messages]


def test_no_file_gives_the_defaults() -> None:
    config = load_config(None, env={})
    assert config == Config()
    assert config.token is None
    assert config.api_base_url is None
    assert config.region.emergency == "911"


def test_example_file_loads_and_equals_the_defaults() -> None:
    assert load_config(EXAMPLE, env={}) == Config()


def test_example_file_documents_every_key() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()

    def keys(model: type[BaseModel], prefix: str) -> Iterator[str]:
        for name, info in model.model_fields.items():
            yield f"{prefix}{name}"
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                yield from keys(info.annotation, f"{prefix}{name}.")

    for dotted in keys(Config, ""):
        indent = "  " * dotted.count(".")
        key = f"{indent}{dotted.rsplit('.', 1)[-1]}:"
        index = next((i for i, line in enumerate(lines) if line.startswith(key)), None)
        assert index is not None, f"`{dotted}` is missing from config.example.yaml"
        # A comment may cover a group of sibling keys (e.g. quiet_hours' start and end).
        above = next(
            line.strip()
            for line in reversed(lines[:index])
            if line.strip() and not (line.startswith(indent) and line[len(indent)].isalpha())
        )
        documented = not indent or above.startswith("#") or above.endswith(":")
        assert documented, f"`{dotted}` has no comment in config.example.yaml"


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n"), env={}) == Config()


def test_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "telegram:\n  admins: [42]\naccess:\n  mode: allowlist\n  allowlist: [7, 8]\n"
        'reminders:\n  quiet_hours:\n    start: "22:30"\n  default_timezone: Europe/Berlin\n'
        "safety:\n  region: UK\n"
        "sending:\n  per_chat_per_second: 1\n",
    )
    config = load_config(path, env={})
    assert config.telegram.admins == [42]
    assert config.access.allowlist == [7, 8]
    assert config.reminders.quiet_hours.start == "22:30"
    assert config.reminders.quiet_hours.end == "08:00"
    assert config.region.lines.suicide[0].contact == "Call 116 123"
    assert config.sending.per_chat_per_second == 1.0


def test_unknown_key_is_located_with_a_suggestion(tmp_path: Path) -> None:
    assert error_lines(tmp_path, "telegram:\n  poll_timout: 20\n") == [
        "config.yaml:2:3: unknown key `poll_timout` in `telegram`; did you mean `poll_timeout`?"
    ]
    assert error_lines(tmp_path, "remnders: {}\n") == [
        "config.yaml:1:1: unknown key `remnders`; did you mean `reminders`?"
    ]


def test_unknown_key_deep_inside_lists_and_mappings(tmp_path: Path) -> None:
    text = "safety:\n  regions:\n    US:\n      label: US\n      emergency: '911'\n"
    text += "      lines:\n        suicide:\n          - name: X\n            contcat: Y\n"
    [missing, unknown] = error_lines(tmp_path, text)
    assert "`safety.regions.US.lines.suicide[0].contact` is missing" in missing
    assert unknown.startswith("config.yaml:9:13: unknown key `contcat`")
    assert "did you mean `contact`?" in unknown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "telegram:\n  poll_timeout: '30'\n",
            "config.yaml:2:17: `telegram.poll_timeout` must be a whole number",
        ),
        (
            "telegram:\n  drop_pending_updates: yes\n",
            "`telegram.drop_pending_updates` must be true or false",
        ),
        (
            "safety:\n  regions:\n    US: {label: US, emergency: 911,\n"
            "         lines: {suicide: [{name: a, contact: b}]}}\n",
            "`safety.regions.US.emergency` must be text (put it in quotes)",
        ),
        ("access:\n  mode: open\n", "`access.mode` must be one of: 'invite' or 'allowlist'"),
        (
            "reminders:\n  quiet_hours: {start: '9:00'}\n",
            '`reminders.quiet_hours.start` must be a time like "21:00"',
        ),
        ("reminders:\n  default_timezone: Mars/Olympus\n", "must be a known time zone"),
        ("reminders:\n  max_unanswered: 3\n", "`reminders.max_unanswered` must be at most 2"),
        ("contract_defaults:\n  max_level: 6\n", "`contract_defaults.max_level` must be at most 5"),
        (
            "contract_defaults:\n  max_level: 2\n  start_level: 3\n",
            "must not be above `max_level` (2)",
        ),
        (
            "safety:\n  regions:\n    United Kingdom: {label: UK, emergency: '999',\n"
            "         lines: {suicide: [{name: a, contact: b}]}}\n",
            "config.yaml:3:5: `safety.regions.United Kingdom` must be a region key like US",
        ),
        (
            "safety:\n  region: FR\n",
            "`safety.region` must be one of the regions listed in `regions`",
        ),
        ("scripts:\n  paths: []\n", "`scripts.paths`: list should have at least 1 item"),
        ("telegram:\n  api_base_url: localhost:8081\n", "must be a URL starting with http://"),
        ("telegram: [1]\n", "`telegram` must be a mapping of keys to values"),
        ("- just\n- a list\n", "config.yaml:1:1: the config file must be a mapping of sections"),
        (
            "telegram:\n  admins: [1]\n  admins: [2]\n",
            'config.yaml:3:3: the key "admins" appears twice',
        ),
    ],
)
def test_wrong_values_are_clear_errors(tmp_path: Path, text: str, expected: str) -> None:
    messages = error_lines(tmp_path, text)
    assert any(expected in message for message in messages), messages
    assert all(message.startswith("config.yaml:") for message in messages)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"token: {TOKEN}\n", "config.yaml:1:1: `token`"),
        (f"telegram:\n  token: {TOKEN}\n", "config.yaml:2:3: `telegram.token`"),
        (f"telegram:\n  bot_token: '{TOKEN}'\n", "config.yaml:2:3: `telegram.bot_token`"),
    ],
)
def test_a_token_in_the_file_is_refused_and_never_echoed(
    tmp_path: Path, text: str, where: str
) -> None:
    [message] = error_lines(tmp_path, text)
    assert message.startswith(where)
    assert "TELEGRAM_BOT_TOKEN" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "text",
    [
        f"{REAL_TOKEN}: true\n",
        f"telegram:\n  {REAL_TOKEN}: x\n",
        f"telegram: {{token: {REAL_TOKEN}}}\n",
        f"'{REAL_TOKEN}':\n  token: x\n",
        f"safety:\n  safety_plans:\n    '{REAL_TOKEN}': {{warning_signs: 3}}\n",
        f"safety:\n  region: {REAL_TOKEN}\n",
        f"telegram:\n  api_base_url: https://api.telegram.org/bot{REAL_TOKEN}/\n",
        f"prompts:\n  locale: [{REAL_TOKEN}]\n  {REAL_TOKEN}x: 1\n",
    ],
)
def test_a_bot_token_anywhere_in_the_file_is_never_printed(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    for command in ("run", "clients"):
        done = subprocess.run(
            [sys.executable, "-m", "bot", command, "--config", str(path)],
            capture_output=True, text=True, env=env, timeout=60, check=False)
        assert done.returncode == 1, done.stderr
        assert "TELEGRAM_BOT_TOKEN" in done.stderr
        assert done.stderr.startswith(f"{path}:")
        assert REAL_TOKEN[8:] not in done.stdout + done.stderr  # not even most of it


def test_a_config_error_hides_a_token_in_any_message() -> None:
    error = ConfigError([f"c.yaml:1:1: `x` must be one of: {REAL_TOKEN}, y"])
    assert REAL_TOKEN[8:] not in str(error)
    assert error.messages == [
        "c.yaml:1:1: `x` must be one of: [a bot token, not shown], y (a bot token belongs in "
        "the TELEGRAM_BOT_TOKEN environment variable)"]


def test_token_and_api_url_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "telegram:\n  api_base_url: https://file.example/bot\n")
    config = load_config(path, env={"TELEGRAM_BOT_TOKEN": f" {TOKEN}\n"})
    assert config.token is not None
    assert config.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(config.token)
    assert TOKEN not in repr(config)
    assert config.api_base_url == "https://file.example/bot"
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": "http://127.0.0.1:8081/bot"}
    assert load_config(path, env=env).api_base_url == "http://127.0.0.1:8081/bot"


def test_empty_environment_values_count_as_unset() -> None:
    config = load_config(None, env={"TELEGRAM_BOT_TOKEN": "", "TELEGRAM_API_BASE_URL": " "})
    assert config.token is None
    assert config.api_base_url is None


def test_malformed_environment_values_are_refused_without_echo() -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN") as caught:
        load_config(None, env={"TELEGRAM_BOT_TOKEN": "not a token"})
    assert "not a token" not in str(caught.value)
    with pytest.raises(ConfigError, match="TELEGRAM_API_BASE_URL"):
        load_config(None, env={"TELEGRAM_API_BASE_URL": "ftp://x"})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_config(path, env={})
    assert str(caught.value).startswith(f"{path}:1:1:")


def test_a_named_pipe_as_config_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    os.mkfifo(path)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.messages == [
        f"{path}:1:1: this is a named pipe, not a regular file; only regular files are read"]


def test_config_is_immutable() -> None:
    config = Config()
    with pytest.raises(ValueError, match="frozen"):
        config.telegram.poll_timeout = 5  # type: ignore[misc]


# -- every setting does something ---------------------------------------------------------------


def _settings(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[
        tuple[type[BaseModel], str, str]]:
    """(model, field, dotted path) of every setting, each model's fields once."""
    for name, info in model.model_fields.items():
        dotted = ".".join((*path, name))
        yield model, name, dotted
        for inner in _models_in(info.annotation):
            yield from _settings(inner, (*path, name))


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _read_names() -> set[str]:
    """Every attribute read, and every string written, in the code outside ``bot/config.py``."""
    names: set[str] = set()
    for file in (ROOT / "bot").rglob("*.py"):
        if file.name == "config.py" and file.parent.name == "bot":
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # read by name: getattr(lines, kind), model_dump() keys
    return names


def test_every_setting_is_read_somewhere() -> None:
    """A setting no code reads does nothing: a therapist would trust a setting that is a lie.

    Names are matched, not types: a setting whose name the code reads elsewhere (``start``)
    passes; one read nowhere at all always fails.
    """
    read = _read_names()
    seen: set[tuple[type[BaseModel], str]] = set()
    unread = []
    for model, name, dotted in _settings(Config):
        if (model, name) not in seen and name not in read:
            unread.append(dotted)
        seen.add((model, name))
    assert unread == []


def test_the_crisis_hold_lasts_whole_hours_from_one_to_a_month(tmp_path: Path) -> None:
    assert load_config(None, env={}).safety.crisis_hold_hours == 24
    config = load_config(write(tmp_path, "safety:\n  crisis_hold_hours: 48\n"), env={})
    assert config.safety.crisis_hold_hours == 48
    for bad in ("0", "721", "soon"):
        [message] = error_lines(tmp_path, f"safety:\n  crisis_hold_hours: {bad}\n")
        assert message.startswith("config.yaml:2:22: "), message
