"""Policy: the practice-wide settings the engine follows, handed in by the edges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bot.crisis import Detection
from bot.engine._terms import Contract


@dataclass(frozen=True)
class CrisisResource:
    """A crisis line or service for the configured region."""

    name: str
    contact: str
    note: str = ""


#: The kinds of risk, in the order their lines are shown (most urgent first); these are the
#: values of :class:`bot.crisis.Kind`. ``suicide`` lines are every region's general lines.
RISK_KINDS = ("suicide", "child_at_risk", "partner_abuse", "sexual_violence", "harm_to_others")


@dataclass(frozen=True)
class RegionLines:
    """A region's emergency number and its crisis and safety lines, per kind of risk.

    Attributes:
        name: The region's key (``US``), as the client chooses it in ``/settings``.
        label: The region's name in words, for the client.
        emergency: The emergency number.
        lines: Lines per kind (``suicide``, ``partner_abuse``, …); a kind without lines of
            its own is shown the ``suicide`` (general crisis) lines.
        languages: Telegram language codes that suggest this region (``de``, ``en-gb``).
    """

    name: str
    label: str
    emergency: str
    lines: Mapping[str, tuple[CrisisResource, ...]]
    languages: tuple[str, ...] = ()

    def groups(self, kinds: tuple[str, ...]) -> list[dict[str, object]]:
        """The lines to show for these kinds, in order, each line once.

        Returns:
            ``[{"kind": ..., "resources": [{"name", "contact", "note"}, ...]}, ...]``, the
            template variables of ``crisis.resources``.
        """
        shown: set[tuple[str, str]] = set()
        groups: list[dict[str, object]] = []
        for kind in [k for k in RISK_KINDS if k in kinds] or ["suicide"]:
            fresh = []
            for line in self.lines.get(kind) or self.lines.get("suicide", ()):
                if (line.name, line.contact) not in shown:
                    shown.add((line.name, line.contact))
                    fresh.append({"name": line.name, "contact": line.contact,
                                  "note": line.note})
            groups.append({"kind": kind, "resources": fresh})
        return groups

    def crisis_context(self, detection: Detection | None, *, running: bool,
                       scene: bool = False) -> dict[str, object]:
        """The variables of ``crisis.resources``, the first message of every crisis response.

        Args:
            detection: What the client's words matched; None for ``/sos`` (every kind's lines).
            running: Whether an exercise was running (it is paused now).
            scene: Whether the bot was playing a role-play character (it steps out now).

        ``plan`` is empty: the engine puts the client's safety plan there
        (:meth:`bot.engine._context.Context.say_first`); someone without a state has none.
        ``alerted`` is False: the engine sets it when the client's therapist is sent an alert.
        """
        kinds = tuple(k.value for k in detection.kinds) if detection else RISK_KINDS
        return {"groups": self.groups(kinds), "emergency": self.emergency,
                "noticed": detection is not None, "paused": running, "scene": scene,
                "imminent": bool(detection and detection.imminent), "plan": "",
                "alerted": False}


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Settings from the practice's configuration that shape the engine's decisions.

    The configuration builds it (:func:`bot.app.policy_from`), so its values and their
    defaults are the configuration's; only the engine's own rules (``long_pause``,
    ``long_absence``, ``late_reminder``) have defaults here.

    Attributes:
        consent_version: Version of the consent texts; a change asks every client again.
        retention_days: How long ledger rows are kept (told to clients in consent texts).
        answers_days: How long stored free-text answers are kept (told to clients, too).
        therapist_delay: When the therapist reads shared summaries, in plain words.
        allow_minors: Whether clients under 18 may use the bot (with guardian consent).
        regions: Every region's lines, by key; the client chooses theirs in ``/settings``.
        region: The practice's region, for clients who have not chosen one.
        silence_followup: Delay before the one follow-up after a high rating and silence.
        crisis_hold: How long a crisis hold lasts at least: it lifts at a check-in in a session
            that starts this long after the signal (or once the therapist clears it).
        crisis_hold_needs_therapist: Whether only the therapist can lift a crisis hold.
        alert_min: At most one alert to the therapist per client in this window.
        contract: The default contract of a new client.
        start_level: The level a new client starts at (never above the contract's max).
        quiet_start: Start of quiet hours (local ``HH:MM``): no reminders from then.
        quiet_end: End of quiet hours (local ``HH:MM``).
        reminders_max_unanswered: Reminders stop after this many go unanswered.
        default_timezone: Used for reminders until the client chooses a time zone.
        long_pause: A pause longer than this restarts one level lower.
        long_absence: Time away after which a session restarts one level lower.
        late_reminder: A reminder later than this is skipped, not sent late.
    """

    consent_version: int
    retention_days: int
    answers_days: int
    therapist_delay: str
    allow_minors: bool
    regions: Mapping[str, RegionLines]
    region: str
    silence_followup: timedelta
    crisis_hold: timedelta
    crisis_hold_needs_therapist: bool
    alert_min: timedelta
    contract: Contract
    start_level: int
    quiet_start: str
    quiet_end: str
    reminders_max_unanswered: int
    default_timezone: str
    long_pause: timedelta = timedelta(days=1)
    long_absence: timedelta = timedelta(days=14)
    late_reminder: timedelta = timedelta(hours=1)

    def lines(self, region: str | None = None) -> RegionLines:
        """A region's lines: the one asked for if configured, else the practice's."""
        return self.regions.get(region or self.region) or self.regions[self.region]

    @property
    def crisis_hold_hours(self) -> int:
        """The crisis hold's least length in whole hours (as the consent text says it)."""
        return self.crisis_hold // timedelta(hours=1)

    @property
    def emergency(self) -> str:
        """The practice region's emergency number."""
        return self.lines().emergency

    def suggest_region(self, language: str | None) -> str | None:
        """The region a Telegram language code suggests (``de`` → ``DE``), if any."""
        if not language:
            return None
        code = language.lower()
        for name, region in self.regions.items():
            if code in region.languages:
                return name
        return None
