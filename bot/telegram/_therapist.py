"""Therapists' commands in Telegram: /invite, /clients, /report, /clearhold, /guardian,
/outcomes CLIENT on|off, /safetyplan CLIENT and /contract CLIENT (a client's own /safetyplan
and /contract have no CLIENT).

Only accounts in ``telegram.admins`` get here (the registry checks); each is a therapist whose
id is their own client key (``tg:<user id>``). An invite records the therapist who made it, and
the client who redeems it joins their caseload; every other command acts on the therapist's
own clients only. Asking about anyone else's client gets the same answer as asking about
nobody, and is noted in that client's ledger (the service does both).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Config
from bot.engine import (
    HISTORY_KINDS,
    LEVELS,
    PARTS,
    TERMS,
    ClientState,
    Clinician,
    Opt,
    SafetyPlan,
    change_from,
    plan_from,
)
from bot.report import (
    CASELOAD_KINDS,
    REPORT_KINDS,
    agreement_text,
    caseload_line,
    caseload_messages,
    change_words,
    progress_report,
    render_report,
)
from bot.script import LoadedScript
from bot.service import NotTheirClient, Rehearsal
from bot.store import Invite
from bot.telegram._convert import client_key
from bot.telegram._invites import code_hash, new_code

#: Commands only therapists' (admin) accounts may use.
THERAPIST_COMMANDS = frozenset({"invite", "clients", "report", "clearhold", "guardian",
                                "outcomes", "safetyplan", "contract"})
#: Commands that are the client's own without arguments (a therapist may be a client too).
CLIENT_TOO = frozenset({"safetyplan", "contract"})
PLAN_USAGE = (
    "Usage: /safetyplan CLIENT shows their safety plan if they share with you. To suggest "
    "wording, one part a line after it:\n/safetyplan 123456789\nwarning_signs: Staying in bed"
    "\ninternal_coping: Cold water on my face\nParts: " + ", ".join(PARTS) + ". The client "
    "accepts or changes each part in /safetyplan; nothing becomes their plan without their yes.")
CONTRACT_USAGE = (
    "Usage: /contract CLIENT shows their agreement and its history. To propose a change, one "
    "term a line after it:\n/contract 123456789\nmax_level: 4\noff_limits: family, work\n"
    "Terms: " + ", ".join(TERMS) + " (off_limits and assign take a list, or none). The client "
    "agrees or asks to talk first; nothing changes without their yes.")
#: The accepted spellings of a level argument: exactly "1" … "5".
LEVEL_ARGS = frozenset(str(level) for level in LEVELS)


def user_key(text: str) -> str | None:
    """``123`` or ``tg:123`` as a Telegram client key (``tg:123``); None for anything else."""
    digits = text.strip().removeprefix("tg:")
    # isdigit() alone accepts "²" and other digits int() refuses.
    return client_key(int(digits)) if digits.isascii() and digits.isdigit() else None


def runnable(scripts: Mapping[str, LoadedScript]) -> list[str]:
    """The scripts a client can be given (those with a first step), sorted."""
    return sorted(sid for sid, loaded in scripts.items() if loaded.first_step)


def _client_and_terms(text: str) -> tuple[str | None, dict[str, str] | None]:
    """A command's client and its ``name: value`` lines (after the client, or one a line).

    Returns:
        The client key (None: none given), and the lines by name (None: a line without a
        colon).
    """
    first, _, rest = text.strip().partition("\n")
    words = first.split(maxsplit=1)
    client = user_key(words[0]) if words else None
    lines = [line for line in [*words[1:], *rest.splitlines()] if line.strip()]
    if any(":" not in line for line in lines):
        return client, None
    return client, {name.strip(): value for name, _, value in
                    (line.partition(":") for line in lines)}


@dataclass(frozen=True, slots=True)
class Reply:
    """What the bot sends back to the therapist.

    Attributes:
        texts: Messages (Telegram HTML), in order.
        document: A file to send after them: its name and content.
        about: The client whose data the file holds (its message is remembered under their
            id, so that erasing the client deletes it from the therapist's chat too, while
            Telegram allows).
    """

    texts: list[str] = field(default_factory=list)
    document: tuple[str, bytes] | None = None
    about: str | None = None


class TherapistDesk:
    """Answers therapists' commands.

    Args:
        config: The configuration (invite lifetime, whether reports go over Telegram).
        service: The service, which checks and logs every read.
        clock: The current UTC time.
        bot_username: The bot's @username, for invite links.
    """

    def __init__(self, config: Config, service: Rehearsal, clock: Callable[[], datetime],
                 bot_username: Callable[[], str]) -> None:
        self.config = config
        self.service = service
        self.clock = clock
        self.bot_username = bot_username

    async def answer(self, name: str, args: list[str], therapist: str, event_id: str,
                     text: str = "") -> Reply:
        """Carry out one command of `therapist` (their client key); `event_id` is the
        update's, so that a redelivered command changes nothing twice; `text` is everything
        after the command, as written (lines kept)."""
        if name == "safetyplan":
            return await self._plan(text, therapist, event_id)
        if name == "contract":
            return await self._contract(text, therapist, event_id)
        if name == "invite":
            return Reply([await self._invite(args, therapist)])
        if name == "clients":
            return await self._clients(therapist)
        if name == "outcomes":
            return await self._outcomes(args, therapist, event_id)
        client = user_key(args[0]) if len(args) == 1 else None
        if client is None:
            return Reply([f"Usage: /{name} CLIENT (a Telegram user id, e.g. 123456789). "
                          "/clients lists yours."])
        try:
            if name == "report":
                return await self._report(client, therapist)
            action = "clear-hold" if name == "clearhold" else "guardian-consent"
            await self.service.authorise(client, therapist, action)
        except NotTheirClient:
            return Reply([f"{client} is not one of your clients. /clients lists yours."])
        await self.service.handle(client, f"{event_id}:clinician",
                                  Clinician(action=action, by=therapist))
        return Reply([f"Recorded for {client}: {action}."])

    async def _outcomes(self, args: list[str], therapist: str, event_id: str) -> Reply:
        """Switch a client's weekly outcome check-in on or off."""
        client = user_key(args[0]) if len(args) == 2 else None
        if client is None or args[1].lower() not in ("on", "off"):
            return Reply(["Usage: /outcomes CLIENT on|off (a Telegram user id, e.g. "
                          "123456789). When on, the client is asked three short 0–10 "
                          "questions about their week, at most once a week; they may skip "
                          "them. /clients lists yours."])
        on = args[1].lower() == "on"
        try:
            await self.service.switch_outcomes(client, therapist, on, f"{event_id}:clinician")
        except NotTheirClient:
            return Reply([f"{client} is not one of your clients. /clients lists yours."])
        return Reply([f"The weekly check-in is {'on' if on else 'off'} for {client}."
                      + (" They are asked at their next session start; you see the answers "
                         "in their report only while they share with you." if on else "")])

    async def _contract(self, text: str, therapist: str, event_id: str) -> Reply:
        """Show a client's agreement and its history, or propose a change to it."""
        client, terms = _client_and_terms(text)
        if client is None or terms is None:
            return Reply([CONTRACT_USAGE])
        scripts = self.service.engine.resources.scripts
        try:
            change = change_from(terms, scripts=runnable(scripts)) if terms else None
        except ValueError as exc:
            return Reply([f"Nothing was proposed: {html.escape(str(exc))}."])
        titles = {sid: loaded.meta.title for sid, loaded in scripts.items()}
        try:
            if change is None:
                record = await self.service.read_record(client, therapist, "contract",
                                                        kinds=HISTORY_KINDS, look=False)
                return Reply([html.escape(agreement_text(
                    record.state, record.ledger, titles=titles,
                    default_zone=self.config.reminders.default_timezone))])
            proposed = await self.service.propose_contract(client, therapist, change,
                                                           f"{event_id}:clinician")
        except NotTheirClient:
            return Reply([f"{client} is not one of your clients. /clients lists yours."])
        words = html.escape(change_words(change, titles))
        if not proposed:
            return Reply([f"The agreement of {client} says that already ({words}); nothing "
                          "was proposed."])
        return Reply([f"Proposed to {client}: {words}. It takes effect only once they agree; "
                      f"/contract {client} shows their answer."])

    async def _plan(self, text: str, therapist: str, event_id: str) -> Reply:
        """Show a client's plan (only if they share with their therapist), or suggest parts."""
        client, parts = _client_and_terms(text)
        if client is None or parts is None:
            return Reply([PLAN_USAGE])
        try:
            suggested = plan_from(parts)
        except ValueError as exc:
            return Reply([f"Nothing was suggested: {html.escape(str(exc))}."])
        try:
            await self.service.authorise(client, therapist, "safety-plan")
        except NotTheirClient:
            return Reply([f"{client} is not one of your clients. /clients lists yours."])
        state = await self.service.state_of(client)
        if not parts:
            return Reply([await self._shown_plan(client, therapist, state)])
        waiting = state.plan_suggestion.plan if state.plan_suggestion else SafetyPlan()
        merged = waiting.model_copy(update={p: suggested.part(p) for p in suggested.filled()})
        await self.service.handle(client, f"{event_id}:clinician", Clinician(
            action="suggest-plan", by=therapist, parts=tuple(merged.parts().items())))
        return Reply([f"Suggested wording for {', '.join(suggested.filled())} to {client}. "
                      "They accept or change each part in /safetyplan; nothing becomes their "
                      "plan without their yes."])

    async def _shown_plan(self, client: str, therapist: str, state: ClientState) -> str:
        """The client's plan for their therapist, if the client shares with them (a read)."""
        if not state.has(Opt.SHARE_WITH_THERAPIST, self.service.engine.resources.policy
                         .consent_version):
            return (f"{client} does not share their practice with you, so their safety plan "
                    "stays private. You can still suggest wording:\n" + PLAN_USAGE)
        record = await self.service.read_record(client, therapist, "safety-plan", kinds=())
        plan = record.state.safety_plan
        if plan is None or not plan.filled():
            return f"{client} has not written a safety plan yet."
        texts = self.service.engine.resources.texts
        return f"<b>The safety plan of {client}</b>, in their words:\n" + "\n".join(
            f"• <b>{html.escape(texts.label(f'buttons.plan_{part}'))}</b> ({part}): "
            f"{html.escape(plan.part(part))}" for part in plan.filled())

    async def _invite(self, args: list[str], therapist: str) -> str:
        scripts = runnable(self.service.engine.resources.scripts)
        if (not args or args[0] not in scripts or len(args) > 2
                or (len(args) == 2 and args[1] not in LEVEL_ARGS)):
            return (f"Usage: /invite SCRIPT [MAX_LEVEL {LEVELS[0]}-{LEVELS[-1]}]. "
                    "Scripts: " + ", ".join(scripts))
        days = self.config.access.invite_ttl_days
        code, now = new_code(), self.clock()
        await self.service.store.add_invite(Invite(
            code_hash=code_hash(code), script_id=args[0],
            max_level=int(args[1]) if len(args) == 2 else None,
            expires_at=now + timedelta(days=days), created_at=now, therapist=therapist))
        return (f"Single-use invite for {args[0]}, valid {days} days; the client who uses it "
                f"becomes yours:\nhttps://t.me/{self.bot_username()}?start={code}")

    async def _clients(self, therapist: str) -> Reply:
        now, zone = self.clock(), self.config.reminders.default_timezone
        records = await self.service.read_caseload(therapist, kinds=CASELOAD_KINDS)
        lines = [caseload_line(r.state, r.ledger, now=now, default_zone=zone,
                               therapist=r.therapist) for r in records]
        return Reply(caseload_messages(lines))

    async def _report(self, client: str, therapist: str) -> Reply:
        if not self.config.telegram.send_reports:
            await self.service.authorise(client, therapist, "report")
            return Reply(["This practice does not send reports through Telegram. Please ask "
                          f"the practice's operator for it: rehearse report {client}"])
        record = await self.service.read_record(client, therapist, "report",
                                                kinds=REPORT_KINDS)
        now = self.clock()
        report = progress_report(record.state, record.ledger, now=now,
                                 default_zone=self.config.reminders.default_timezone,
                                 scripts=self.service.engine.resources.scripts,
                                 therapist=record.therapist)
        name = f"rehearse-report-{client.removeprefix('tg:')}-{now:%Y-%m-%d}.html"
        return Reply(
            [f"The progress report of {html.escape(client)}: only what they chose to share. "
             "It holds health information; keep the file private."],
            document=(name, render_report(report).encode()),
            about=client)
