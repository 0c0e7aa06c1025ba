"""Wiring: from a :class:`~bot.config.Config` to a ready engine, renderer and scripts.

Both edges build their engine here, so the terminal and Telegram run exactly the same
scripts, texts, crisis rules, intents and policy.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bot.check import check_script
from bot.config import Config
from bot.crisis import (
    Detector,
    Reader,
    SentenceReader,
    load_reader,
    load_rules,
    load_sentence_reader,
    reader_path,
    sentence_path,
)
from bot.engine import (
    RISK_KINDS,
    CrisisResource,
    Engine,
    Policy,
    RegionLines,
    Resources,
)
from bot.intents import Intents, load_intents
from bot.render import Renderer
from bot.script import (
    Finding,
    LoadedScript,
    ScriptError,
    Severity,
    load_script,
    script_files,
    script_folders,
)
from bot.store import Store, store_for


@dataclass
class Loaded:
    """Everything built from the configuration.

    Attributes:
        engine: The engine, sharing ``scripts`` (mutable, for live reload).
        renderer: The text renderer.
        scripts: Scripts by id that passed every check.
        findings: Problems found while loading; scripts with errors are left out.
    """

    engine: Engine
    renderer: Renderer
    scripts: dict[str, LoadedScript]
    findings: list[Finding]


#: Where the shipped ``scripts/`` and ``prompts/`` live (the project directory).
PROJECT_DIR = Path(__file__).resolve().parent.parent


def resolve(path: Path) -> Path:
    """A configured relative path: from the working directory, else the project directory."""
    if path.is_absolute() or path.exists():
        return path
    shipped = PROJECT_DIR / path
    return shipped if shipped.exists() else path


def load_checked(
    files: Sequence[Path], renderer: Renderer, folders: Sequence[Path] | None = None
) -> tuple[dict[str, LoadedScript], list[Finding]]:
    """Load and check scripts; only those without errors are returned.

    Args:
        files: The script files.
        renderer: The renderer whose sandbox checks their texts.
        folders: The script folders files and includes are read from (by default each
            file's own, see :func:`~bot.script.load_script`).
    """
    scripts: dict[str, LoadedScript] = {}
    findings: list[Finding] = []
    for file in files:
        try:
            script = load_script(file, folders=folders)
        except ScriptError as exc:
            findings.extend(exc.findings)
            continue
        found = check_script(script, renderer)
        findings.extend(found)
        if not any(f.severity is Severity.ERROR for f in found):
            scripts[script.id] = script
    return scripts, findings


def crisis_detector(prompts_dir: Path, locale: str, *, second_reader: bool = False,
                    sentence_reader: bool = False) -> Detector:
    """The crisis detector for a locale: its rules (``prompts/<locale>/crisis_rules.yaml``)
    and, when asked for and when the package has them for the locale, its second reader
    (``bot/crisis/reader_<locale>.json``) and its sentence reader
    (``bot/crisis/sentence_<locale>.json`` and the model it names).

    Loading the rule book is most of the cost of building the app (about a second), and a
    detector never changes once built, so one built from the same unchanged files (same
    paths, sizes and modification times) is reused: the CLI's commands and the tests build
    the app many times in one process.

    Raises:
        ScriptError: When the rule book or a reader's files have mistakes.
    """
    path = prompts_dir / locale / "crisis_rules.yaml"
    try:
        seen = path.stat()
    except OSError:
        return Detector(load_rules(path))  # the loader reports the missing file
    readers = [(reader_path(locale), second_reader), (sentence_path(locale), sentence_reader)]
    return _detector(path, seen.st_size, seen.st_mtime_ns,
                     *(_version(file) if wanted else None for file, wanted in readers))


#: A data file and its size and modification time (the cache's key), or None for none.
_Version = tuple[Path, int, int] | None


def _version(path: Path) -> _Version:
    try:
        seen = path.stat()
    except OSError:
        return None  # the package has none for this locale
    return path, seen.st_size, seen.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _detector(path: Path, size: int, mtime_ns: int, reader: _Version,
              sentence: _Version) -> Detector:
    """One detector per version of a rule book and readers' files (sizes and modification
    times are the key)."""
    return Detector(load_rules(path), None if reader is None else _second_reader(reader),
                    None if sentence is None else _sentence_reader(sentence))


@functools.lru_cache(maxsize=2)
def _second_reader(version: tuple[Path, int, int]) -> Reader:
    """One second reader per version of its file, whichever rule book it serves."""
    return load_reader(version[0])


@functools.lru_cache(maxsize=2)
def _sentence_reader(version: tuple[Path, int, int]) -> SentenceReader:
    """One sentence reader per version of its file (loading the model takes about 0.4 s, and the
    process peaks about 75 MB higher), whichever rule book it serves."""
    return load_sentence_reader(version[0])


def intents_reader(prompts_dir: Path, locale: str, crisis: Detector) -> Intents:
    """The intents of a locale (``prompts/<locale>/intents.yaml``), read with the chat
    spellings and language of its crisis rule book.

    Raises:
        ScriptError: When the intent book has mistakes (each at ``file:line:col``).
    """
    book = load_intents(prompts_dir / locale / "intents.yaml")
    return Intents(book, crisis.book.chat, crisis.book.lang)


def region_lines(config: Config) -> dict[str, RegionLines]:
    """Every configured region's emergency number and lines, for the engine."""
    regions: dict[str, RegionLines] = {}
    for name, region in config.safety.regions.items():
        lines = {kind: tuple(CrisisResource(r.name, r.contact, r.note or "")
                             for r in getattr(region.lines, kind))
                 for kind in RISK_KINDS}
        regions[name] = RegionLines(name=name, label=region.label, emergency=region.emergency,
                                    lines={k: v for k, v in lines.items() if v},
                                    languages=tuple(region.languages))
    return regions


def policy_from(config: Config) -> Policy:
    """The engine's policy from the practice's configuration."""
    safety = config.safety
    defaults = config.contract_defaults
    return Policy(
        consent_version=config.consent.version,
        retention_days=config.storage.retention.ledger_days,
        answers_days=config.storage.retention.answers_days,
        therapist_delay=config.consent.therapist_delay,
        allow_minors=config.access.allow_minors,
        regions=region_lines(config),
        region=safety.region,
        silence_followup=timedelta(minutes=safety.silence_followup_minutes),
        crisis_hold=timedelta(hours=safety.crisis_hold_hours),
        crisis_hold_needs_therapist=safety.crisis_hold_needs_therapist,
        alert_min=timedelta(minutes=safety.alert_min_minutes),
        contract=defaults.contract(distress_threshold=safety.distress_threshold),
        start_level=defaults.start_level,
        quiet_start=config.reminders.quiet_hours.start,
        quiet_end=config.reminders.quiet_hours.end,
        reminders_max_unanswered=config.reminders.max_unanswered,
        default_timezone=config.reminders.default_timezone,
    )


def build(config: Config, script_paths: Sequence[Path] | None = None) -> Loaded:
    """Build renderer, scripts and engine from the configuration.

    Args:
        config: The loaded configuration.
        script_paths: Scripts to load instead of ``config.scripts.paths``.
    """
    prompts = resolve(Path(config.prompts.path))
    renderer = Renderer.from_dir(prompts, config.prompts.locale)
    paths = script_paths or [resolve(Path(p)) for p in config.scripts.paths]
    scripts, findings = load_checked(script_files(paths), renderer, script_folders(paths))
    crisis = crisis_detector(prompts, config.prompts.locale,
                             second_reader=config.safety.second_reader,
                             sentence_reader=config.safety.sentence_reader)
    resources = Resources(scripts=scripts, texts=renderer, crisis=crisis,
                          intents=intents_reader(prompts, config.prompts.locale, crisis),
                          policy=policy_from(config))
    return Loaded(Engine(resources), renderer, scripts, findings)


def store_from(config: Config, *, cleanup_retry: float = 5.0) -> Store:
    """The (unopened) store ``storage`` names: a SQLite file or a PostgreSQL database.

    Raises:
        StoreError: The database URL cannot be used (see `bot.store.store_for`).
    """
    storage = config.storage
    password = config.database_password
    return store_for(storage.database,
                     password=None if password is None else password.get_secret_value(),
                     pool_size=storage.pool_size,
                     prepared_statements=storage.prepared_statements,
                     cleanup_retry=cleanup_retry)
