"""Configuration: the practice's settings from one YAML file, secrets from the environment.

Every key is optional: with no file, or an empty one, the defaults below apply (they equal
``config.example.yaml``, which documents every key). The models are strict — unknown keys and
values of the wrong type are errors located at ``file:line:col`` — so a typo is caught at
start-up instead of silently changing how the bot treats clients.

The bot token is read only from ``TELEGRAM_BOT_TOKEN``; a ``token`` key in the file is an
error. ``TELEGRAM_API_BASE_URL`` overrides ``telegram.api_base_url``. A PostgreSQL password
comes from ``REHEARSE_DATABASE_PASSWORD`` (or libpq's ``PGPASSWORD``); one in the
``storage.database`` URL is an error. Webhook mode's secret token comes from
``TELEGRAM_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot.engine import (
    AdvanceRule,
    CheckinEvery,
    CompletedAtLevel,
    Contract,
    Level,
    MaxAfterDistress,
    Pace,
    RoleplayTurns,
    SessionMinutes,
    SessionsPerDay,
    Threshold,
)
from bot.script._findings import BOT_TOKEN, ScriptError, redact_tokens
from bot.script._validation import dotted, findings
from bot.script._yaml import LoadedYaml, Path_, load_yaml
from bot.store import PASSWORD_ENV, database_problem

__all__ = ["Config", "ConfigError", "load_config"]

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
API_BASE_URL_ENV = "TELEGRAM_API_BASE_URL"
WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"
#: What Telegram accepts as a webhook's secret token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{16,256}")

_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_URL = r"^https?://[^\s/]+\S*$"
_LOCALE = r"^[a-z]{2}(-[A-Z]{2})?$"
_SLUG = r"^[a-z0-9][a-z0-9-]{0,39}$"
#: A region's key: its buttons in ``/settings`` carry it (``bot.engine._buttons.REGION_KEY``).
_REGION = r"^[A-Za-z0-9_-]{1,20}$"
_TOKEN = re.compile(r"\d+:[\w-]+")
_PATTERN_HINTS = {
    _TIME: 'a time like "21:00" (24-hour clock, in quotes)',
    _URL: "a URL starting with http:// or https://",
    _LOCALE: "a locale like en, de or pt-BR",
    _SLUG: "a topic id: lower-case letters, digits and dashes",
    _REGION: "a region key like US or UK: 1 to 20 letters, digits, - or _",
}
_SECRET_KEYS = frozenset({"token", "bot_token", "api_token", "telegram_bot_token"})
#: The engine's own contract: the defaults of ``contract_defaults`` (its bounds are the same).
_CONTRACT = Contract()
_ADVANCE = _CONTRACT.advance

Time = Annotated[str, Field(pattern=_TIME)]
Url = Annotated[str, Field(pattern=_URL)]
Entry = Annotated[str, Field(min_length=1, max_length=200)]
PathValue = Annotated[Path, Field(strict=False)]


class ConfigError(Exception):
    """The configuration cannot be used; each message reads ``file:line:col: message``.

    Nothing that looks like a bot token is ever part of a message, wherever in the file it
    was written (a key, a value, a path): it is replaced by a placeholder, with a word on
    where the token belongs.
    """

    def __init__(self, messages: list[str]) -> None:
        messages = [_without_token(message) for message in messages]
        super().__init__("\n".join(messages))
        self.messages = messages


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WebhookConfig(_Section):
    """Where Telegram posts updates in webhook mode, and where the bot listens for them."""

    url: Url | None = None
    listen: Annotated[str, Field(min_length=1, max_length=255)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    max_connections: Annotated[int, Field(ge=1, le=100)] = 40


class TelegramConfig(_Section):
    """How the bot talks to Telegram."""

    api_base_url: Url | None = None
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout: Annotated[int, Field(ge=1, le=50)] = 30
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    admins: list[int] = Field(default_factory=list)
    drop_pending_updates: bool = False
    connection_pool_size: Annotated[int, Field(ge=1, le=256)] = 8
    #: Whether ``/report`` sends progress reports to therapists over Telegram.
    send_reports: bool = True


class AccessConfig(_Section):
    """Who may use the bot."""

    mode: Literal["invite", "allowlist"] = "invite"
    allowlist: list[int] = Field(default_factory=list)
    invite_ttl_days: Annotated[int, Field(ge=1, le=90)] = 7
    wrong_code_limit: Annotated[int, Field(ge=1, le=100)] = 5
    wrong_code_window_minutes: Annotated[int, Field(ge=1, le=10_080)] = 60
    stranger_codes_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 30
    stranger_replies_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 60
    allow_minors: bool = False


class RetentionConfig(_Section):
    """How long stored data is kept before the purge job deletes it."""

    ledger_days: Annotated[int, Field(ge=1, le=3650)] = 730
    answers_days: Annotated[int, Field(ge=1, le=3650)] = 90


class StorageConfig(_Section):
    """Where data is stored: a SQLite file, or a PostgreSQL database shared by workers."""

    database: str = "rehearse.db"
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    pool_size: Annotated[int, Field(ge=1, le=100)] = 10
    prepared_statements: bool = True

    @field_validator("database")
    @classmethod
    def _usable(cls, value: str) -> str:
        problem = database_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class ScriptsConfig(_Section):
    """Where scripts are loaded from."""

    paths: Annotated[list[PathValue], Field(min_length=1)] = Field(
        default_factory=lambda: [Path("scripts")]
    )


class PromptsConfig(_Section):
    """Where the system texts are loaded from."""

    path: PathValue = Path("prompts")
    locale: Annotated[str, Field(pattern=_LOCALE)] = "en"


class Resource(_Section):
    """One crisis line or service."""

    name: Entry
    contact: Entry
    note: Annotated[str, Field(max_length=200)] = ""


class Lines(_Section):
    """A region's crisis and safety lines per kind of risk; only ``suicide`` is required.

    A kind without lines of its own shows the ``suicide`` (general crisis) lines.
    """

    suicide: Annotated[list[Resource], Field(min_length=1, max_length=6)]
    partner_abuse: Annotated[list[Resource], Field(max_length=6)] = Field(default_factory=list)
    sexual_violence: Annotated[list[Resource], Field(max_length=6)] = Field(default_factory=list)
    child_at_risk: Annotated[list[Resource], Field(max_length=6)] = Field(default_factory=list)
    harm_to_others: Annotated[list[Resource], Field(max_length=6)] = Field(default_factory=list)


class Region(_Section):
    """The emergency number and the crisis and safety lines of one region."""

    label: Annotated[str, Field(min_length=1, max_length=60)]
    emergency: Annotated[str, Field(min_length=1, max_length=40)]
    lines: Lines
    #: Telegram language codes (lower case) that suggest this region to a client.
    languages: list[Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")]] = Field(
        default_factory=list
    )


class ConfigPlan(_Section):
    """A safety plan as earlier releases read it from ``safety.safety_plans``: lists of
    entries. Only ``rehearse safety-plan --import-config`` reads it now, to move it into the
    store (:func:`config_plans`); the key itself is refused everywhere else."""

    warning_signs: list[Entry] = Field(default_factory=list)
    coping_steps: list[Entry] = Field(default_factory=list)
    people_places: list[Entry] = Field(default_factory=list)
    professionals: list[Entry] = Field(default_factory=list)
    safe_surroundings: list[Entry] = Field(default_factory=list)


def _line(name: str, contact: str, note: str = "") -> Resource:
    return Resource(name=name, contact=contact, note=note)


def _default_regions() -> dict[str, Region]:
    """The shipped regions. Every number is the one its service publishes on its own site
    (the address is beside it); reviewed 2026-12-01. A practice must check its region's
    numbers before going live and yearly after (docs/safety.md, "Crisis lines")."""
    return {
        "US": Region(
            label="United States", emergency="911", languages=["en-us"],
            lines=Lines(
                suicide=[  # 988lifeline.org; crisistextline.org
                    _line("988 Suicide & Crisis Lifeline", "Call or text 988, or chat at "
                          "988lifeline.org", "24/7, free, confidential"),
                    _line("Crisis Text Line", "Text HOME to 741741", "24/7, free"),
                ],
                partner_abuse=[  # thehotline.org
                    _line("National Domestic Violence Hotline",
                          "Call 1-800-799-7233 or text START to 88788", "24/7, confidential"),
                ],
                sexual_violence=[  # rainn.org
                    _line("RAINN National Sexual Assault Hotline", "Call 1-800-656-4673",
                          "24/7, confidential"),
                ],
                child_at_risk=[  # childhelphotline.org; postpartum: mchb.hrsa.gov
                    _line("Childhelp National Child Abuse Hotline", "Call or text "
                          "1-800-422-4453", "24/7, also for parents who fear they may hurt "
                          "their child"),
                    _line("National Maternal Mental Health Hotline", "Call or text "
                          "1-833-852-6262", "24/7, for parents of babies"),
                ],
                harm_to_others=[  # 988lifeline.org: anyone in emotional crisis
                    _line("988 Suicide & Crisis Lifeline", "Call or text 988",
                          "24/7, also if you fear you may hurt someone"),
                ],
            ),
        ),
        "UK": Region(
            label="United Kingdom", emergency="999", languages=["en-gb", "cy"],
            lines=Lines(
                suicide=[  # samaritans.org; giveusashout.org
                    _line("Samaritans", "Call 116 123", "24/7, free"),
                    _line("Shout", "Text SHOUT to 85258", "24/7, free, confidential"),
                ],
                partner_abuse=[  # nationaldahelpline.org.uk (Refuge)
                    _line("National Domestic Abuse Helpline", "Call 0808 2000 247",
                          "24/7, free, confidential"),
                ],
                sexual_violence=[  # rapecrisis.org.uk
                    _line("Rape Crisis 24/7 Support Line", "Call 0808 500 2222",
                          "24/7, free (England and Wales)"),
                ],
                child_at_risk=[  # nspcc.org.uk; childline.org.uk
                    _line("NSPCC Helpline", "Call 0808 800 5000", "for adults worried "
                          "about a child"),
                    _line("Childline", "Call 0800 1111", "for children and young people"),
                ],
            ),
        ),
        "IE": Region(
            label="Ireland", emergency="112 or 999", languages=["en-ie", "ga"],
            lines=Lines(
                suicide=[  # samaritans.ie; textaboutit.ie
                    _line("Samaritans", "Call 116 123", "24/7, free"),
                    _line("Text About It", "Text HELLO to 50808", "24/7, free"),
                ],
                partner_abuse=[  # womensaid.ie
                    _line("Women's Aid National Freephone Helpline", "Call 1800 341 900",
                          "24/7, free"),
                ],
                sexual_violence=[  # drcc.ie
                    _line("Rape Crisis Helpline (Dublin Rape Crisis Centre)",
                          "Call 1800 77 8888", "24/7, free"),
                ],
                child_at_risk=[  # ispcc.ie
                    _line("ISPCC Childline", "Call 1800 66 66 66", "24/7, free"),
                ],
            ),
        ),
        "CA": Region(
            label="Canada", emergency="911", languages=["en-ca", "fr-ca"],
            lines=Lines(
                suicide=[  # 988.ca
                    _line("9-8-8 Suicide Crisis Helpline", "Call or text 988", "24/7, free"),
                ],
                child_at_risk=[  # kidshelpphone.ca
                    _line("Kids Help Phone", "Call 1-800-668-6868 or text CONNECT to 686868",
                          "24/7, free"),
                ],
            ),
        ),
        "AU": Region(
            label="Australia", emergency="000", languages=["en-au"],
            lines=Lines(
                suicide=[  # lifeline.org.au; beyondblue.org.au
                    _line("Lifeline", "Call 13 11 14 or text 0477 13 11 14", "24/7"),
                    _line("Beyond Blue", "Call 1300 22 4636", "24/7"),
                ],
                partner_abuse=[  # 1800respect.org.au
                    _line("1800RESPECT", "Call 1800 737 732", "24/7, domestic, family and "
                          "sexual violence"),
                ],
                sexual_violence=[  # 1800respect.org.au
                    _line("1800RESPECT", "Call 1800 737 732", "24/7, domestic, family and "
                          "sexual violence"),
                ],
                child_at_risk=[  # kidshelpline.com.au
                    _line("Kids Helpline", "Call 1800 55 1800", "24/7, for young people"),
                ],
            ),
        ),
        "NZ": Region(
            label="New Zealand", emergency="111", languages=["en-nz", "mi"],
            lines=Lines(
                suicide=[  # 1737.org.nz; lifeline.org.nz
                    _line("Need to talk?", "Call or text 1737", "24/7, free"),
                    _line("Lifeline Aotearoa", "Call 0800 543 354", "24/7, free"),
                ],
                partner_abuse=[  # womensrefuge.org.nz
                    _line("Women's Refuge Crisisline", "Call 0800 733 843", "24/7, free"),
                ],
                sexual_violence=[  # safetotalk.nz
                    _line("Safe to talk", "Call 0800 044 334 or text 4334", "24/7, free"),
                ],
            ),
        ),
        "DE": Region(
            label="Deutschland", emergency="112", languages=["de", "de-de"],
            lines=Lines(
                suicide=[  # telefonseelsorge.de
                    _line("TelefonSeelsorge", "Anrufen: 0800 111 0 111 oder 0800 111 0 222",
                          "24/7, kostenlos"),
                ],
                partner_abuse=[  # hilfetelefon.de
                    _line("Hilfetelefon Gewalt gegen Frauen", "Anrufen: 116 016",
                          "24/7, kostenlos, auch auf Englisch"),
                ],
                sexual_violence=[  # hilfetelefon.de; hilfe-portal-missbrauch.de
                    _line("Hilfetelefon Gewalt gegen Frauen", "Anrufen: 116 016",
                          "24/7, kostenlos"),
                ],
                child_at_risk=[  # hilfe-portal-missbrauch.de; nummergegenkummer.de
                    _line("Hilfetelefon Sexueller Missbrauch", "Anrufen: 0800 22 55 530",
                          "kostenlos, anonym"),
                    _line("Nummer gegen Kummer", "Anrufen: 116 111", "für Kinder und "
                          "Jugendliche"),
                ],
            ),
        ),
    }


class SafetyConfig(_Section):
    """Crisis resources and safety thresholds."""

    regions: dict[Annotated[str, Field(pattern=_REGION)], Region] = Field(
        default_factory=_default_regions)
    region: str = "US"
    distress_threshold: Threshold = _CONTRACT.distress_threshold
    silence_followup_minutes: Annotated[int, Field(ge=1, le=1440)] = 10
    #: A crisis hold's least length: it lifts at a fresh check-in in a session that starts
    #: this many hours after the signal (or once the therapist clears it).
    crisis_hold_hours: Annotated[int, Field(ge=1, le=720)] = 24
    crisis_hold_needs_therapist: bool = False
    #: Whether the crisis detector's second reader (a learned classifier, docs/safety.md §1)
    #: may add matches the rules miss (on: docs/safety.md §5 gives the measurements).
    second_reader: bool = True
    #: Whether the crisis detector's sentence reader (a fine-tuned small language model,
    #: docs/safety.md §1 step 8) may add matches the rules and the second reader miss (on:
    #: docs/safety.md §5 gives the recall it adds and the false alarms it costs).
    sentence_reader: bool = True
    #: At most one alert to the therapist per client in this many minutes (clients who
    #: opted in); a later signal in the window is ledgered as not sent.
    alert_min_minutes: Annotated[int, Field(ge=1, le=1440)] = 30

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str, info: ValidationInfo) -> str:
        regions = info.data.get("regions")
        if regions is not None and region not in regions:
            known = ", ".join(sorted(regions))
            raise ValueError(f"must be one of the regions listed in `regions` ({known})")
        return region


class AdvanceDefaults(_Section):
    """When a client may be offered the next level (never moved up without asking)."""

    completed_at_level: CompletedAtLevel = _ADVANCE.completed_at_level
    max_after_distress: MaxAfterDistress = _ADVANCE.max_after_distress
    require_actual_not_harder_than_expected: bool = (
        _ADVANCE.require_actual_not_harder_than_expected)

    def rule(self) -> AdvanceRule:
        """The engine's rule."""
        return AdvanceRule.model_validate(self.model_dump())


class ContractDefaults(_Section):
    """The contract a new client starts with, until their therapist changes it."""

    max_level: Level = _CONTRACT.max_level
    start_level: Level = 1
    off_limit_topics: list[Annotated[str, Field(pattern=_SLUG)]] = Field(default_factory=list)
    pace: Annotated[Pace, Field(strict=False)] = _CONTRACT.pace
    session_minutes: SessionMinutes = _CONTRACT.session_minutes
    roleplay_turns: RoleplayTurns = _CONTRACT.roleplay_turns
    sessions_per_day: SessionsPerDay = _CONTRACT.sessions_per_day
    advance: AdvanceDefaults = Field(default_factory=AdvanceDefaults)
    checkin_every_turns: CheckinEvery = _CONTRACT.checkin_every_turns

    def contract(self, *, distress_threshold: int) -> Contract:
        """The engine's contract for a new client (with the practice's distress threshold)."""
        return Contract(
            max_level=self.max_level, off_limit_topics=list(self.off_limit_topics),
            pace=self.pace, distress_threshold=distress_threshold,
            session_minutes=self.session_minutes, roleplay_turns=self.roleplay_turns,
            checkin_every_turns=self.checkin_every_turns,
            sessions_per_day=self.sessions_per_day, advance=self.advance.rule())

    @field_validator("start_level")
    @classmethod
    def _start_within_max(cls, start: int, info: ValidationInfo) -> int:
        highest = info.data.get("max_level")
        if highest is not None and start > highest:
            raise ValueError(f"must not be above `max_level` ({highest})")
        return start


class QuietHours(_Section):
    """No reminders between ``start`` and ``end`` (client's local time; may span midnight)."""

    start: Time = "21:00"
    end: Time = "08:00"


class RemindersConfig(_Section):
    """Reminder behaviour."""

    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    max_unanswered: Annotated[int, Field(ge=1, le=2)] = 2
    default_timezone: str = "UTC"

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be a known time zone, like Europe/Berlin or UTC") from None
        return name


class SendingConfig(_Section):
    """Rate limits and retries for messages to Telegram."""

    per_chat_per_second: Annotated[float, Field(gt=0, le=30)] = 1.0
    per_chat_burst: Annotated[int, Field(ge=1, le=10)] = 3
    global_per_second: Annotated[float, Field(gt=0, le=30)] = 30.0
    backoff_seconds: Annotated[
        list[Annotated[float, Field(gt=0, le=3600)]], Field(min_length=1)
    ] = Field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 30.0, 60.0])


class ConsentConfig(_Section):
    """The consent text's version and promises."""

    version: Annotated[int, Field(ge=1)] = 3
    therapist_delay: Annotated[str, Field(min_length=1, max_length=80)] = "before your next session"


class LoggingConfig(_Section):
    """Logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Section):
    """The whole configuration; the token and API URL come from the environment."""

    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    scripts: ScriptsConfig = Field(default_factory=ScriptsConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    contract_defaults: ContractDefaults = Field(default_factory=ContractDefaults)
    reminders: RemindersConfig = Field(default_factory=RemindersConfig)
    sending: SendingConfig = Field(default_factory=SendingConfig)
    consent: ConsentConfig = Field(default_factory=ConsentConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    _token: SecretStr | None = PrivateAttr(default=None)
    _env_api_base_url: str | None = PrivateAttr(default=None)
    _database_password: SecretStr | None = PrivateAttr(default=None)
    _webhook_secret: SecretStr | None = PrivateAttr(default=None)

    @property
    def token(self) -> SecretStr | None:
        """The bot token from ``TELEGRAM_BOT_TOKEN``, or None when it is not set."""
        return self._token

    @property
    def api_base_url(self) -> str | None:
        """The Bot API base URL: ``TELEGRAM_API_BASE_URL`` if set, else the file's value."""
        return self._env_api_base_url or self.telegram.api_base_url

    @property
    def webhook_secret(self) -> SecretStr | None:
        """The webhook's secret token from ``TELEGRAM_WEBHOOK_SECRET``, or None."""
        return self._webhook_secret

    @property
    def database_password(self) -> SecretStr | None:
        """The PostgreSQL password from ``REHEARSE_DATABASE_PASSWORD``, or None."""
        return self._database_password

    @property
    def region(self) -> Region:
        """The practice's region: its emergency number and crisis and safety lines."""
        return self.safety.regions[self.safety.region]


def load_config(path: Path | None, env: Mapping[str, str] = os.environ, *,
                importing: bool = False) -> Config:
    """Load the configuration file (all defaults without one) and the environment.

    Args:
        path: The YAML file, or None to use the defaults.
        env: Where ``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_API_BASE_URL``,
            ``TELEGRAM_WEBHOOK_SECRET`` and ``REHEARSE_DATABASE_PASSWORD`` are read from.
        importing: Leave out ``safety.safety_plans`` instead of refusing it (only
            ``rehearse safety-plan --import-config``, which moves those plans, asks this).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: With every problem found, each as ``file:line:col: message``.
    """
    config = Config() if path is None else _load_file(path, importing=importing)
    token = env.get(TOKEN_ENV, "").strip()
    if token and not _TOKEN.fullmatch(token):
        raise ConfigError(
            [
                f"{TOKEN_ENV} does not look like a bot token (digits, a colon, then letters, "
                "digits, - or _, as @BotFather gives it); its value is not shown"
            ]
        )
    base_url = env.get(API_BASE_URL_ENV, "").strip()
    if base_url and not re.fullmatch(_URL, base_url):
        raise ConfigError([f"{API_BASE_URL_ENV} must be a URL starting with http:// or https://"])
    config._token = SecretStr(token) if token else None
    config._env_api_base_url = base_url or None
    password = env.get(PASSWORD_ENV, "")
    config._database_password = SecretStr(password) if password else None
    secret = env.get(WEBHOOK_SECRET_ENV, "").strip()
    if secret and not _WEBHOOK_SECRET.fullmatch(secret):
        raise ConfigError([
            f"{WEBHOOK_SECRET_ENV} must be 16 to 256 letters, digits, - or _ (Telegram's "
            "rule for a webhook's secret token); its value is not shown"])
    config._webhook_secret = SecretStr(secret) if secret else None
    return config


#: The key that held safety plans until they moved into the store.
PLANS_KEY = "safety_plans"
PLANS_MOVED = (
    "`safety.safety_plans` is no longer read: each client's safety plan now lives in the store, "
    "written by the client with /safetyplan (a therapist can suggest wording with `rehearse "
    "safety-plan CLIENT --edit` or /safetyplan CLIENT); see docs/safety.md. Move these plans "
    "into the store once with `rehearse safety-plan --import-config`, then delete this key")


def config_plans(path: Path) -> dict[str, dict[str, list[str]]]:
    """The safety plans a config file still holds under ``safety.safety_plans``, by client.

    Raises:
        ConfigError: The file is not a valid configuration apart from that key, or a plan in
            it is not one earlier releases read (each as ``file:line:col: message``).
    """
    _load_file(path, importing=True)  # the rest of the file must be valid, as before
    source = load_yaml(path)
    data = source.data if isinstance(source.data, dict) else {}
    safety = data.get("safety")
    raw = safety.get(PLANS_KEY) if isinstance(safety, dict) else None
    if raw is None:
        return {}
    try:
        plans = _ConfigPlans.model_validate({PLANS_KEY: raw})
    except ValidationError as exc:
        raise ConfigError([
            _at(source, ("safety", *error["loc"])) + error["msg"]
            for error in exc.errors()]) from None
    return {client: plan.model_dump() for client, plan in plans.safety_plans.items()}


class _ConfigPlans(_Section):
    safety_plans: dict[str, ConfigPlan]


def _load_file(path: Path, *, importing: bool = False) -> Config:
    if not path.exists():
        raise ConfigError(
            [
                f"{path}:1:1: the config file does not exist; copy config.example.yaml "
                "or run without a config file to use the defaults"
            ]
        )
    try:
        source = load_yaml(path)
    except ScriptError as exc:
        raise ConfigError(
            [f"{f.file}:{f.line}:{f.col}: {f.message}" for f in exc.findings]
        ) from None
    data = {} if source.data is None else source.data
    if not isinstance(data, dict):
        mark = source.mark_for(())
        raise ConfigError(
            [f"{mark.file}:{mark.line}:{mark.col}: the config file must be a mapping of sections"]
        )
    secrets = [
        _at(source, found, key=is_key)
        + f"`{dotted(found, 'config')}`: secrets do not belong in the config file; "
        f"set the {TOKEN_ENV} environment variable instead"
        for found, is_key in _secrets(data, ())
    ]
    if secrets:
        raise ConfigError(secrets)
    safety = data.get("safety")
    if not importing and isinstance(safety, dict) and PLANS_KEY in safety:
        raise ConfigError([_at(source, ("safety", PLANS_KEY), key=True) + PLANS_MOVED])
    if importing and isinstance(safety, dict):
        data = {**data, "safety": {k: v for k, v in safety.items() if k != PLANS_KEY}}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_messages(exc, source)) from None


def _without_token(message: str) -> str:
    """A message with any bot token hidden, saying where the token belongs if one was."""
    hidden = redact_tokens(message)
    if hidden != message and TOKEN_ENV not in hidden:
        hidden += f" (a bot token belongs in the {TOKEN_ENV} environment variable)"
    return hidden


def _secrets(data: object, path: Path_) -> Iterator[tuple[Path_, bool]]:
    """Where ``data`` holds a secret: a key meant for the bot token, or a token itself.

    Yields:
        The path of each, and whether it is the key (rather than the value) at fault.
    """
    if isinstance(data, dict):
        for key, value in data.items():
            if key.lower() in _SECRET_KEYS or BOT_TOKEN.search(key):
                yield (*path, key), True
            else:
                yield from _secrets(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _secrets(item, (*path, index))
    elif isinstance(data, str) and BOT_TOKEN.search(data):
        yield path, False


def _messages(exc: ValidationError, source: LoadedYaml) -> list[str]:
    return [f"{f.file}:{f.line}:{f.col}: {f.message}"
            for f in findings(exc, source, Config, patterns=_PATTERN_HINTS, name="config")]


def _at(source: LoadedYaml, loc: Path_, *, key: bool = False) -> str:
    mark = source.mark_for(loc, key=key)
    return f"{mark.file}:{mark.line}:{mark.col}: "
