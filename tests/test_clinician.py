"""Therapist actions: lifting a crisis hold, recording a guardian's consent, admin-only commands."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import Loaded
from bot.cli import main
from bot.engine import (
    Button,
    ClientState,
    Clinician,
    ConsentQuestion,
    Engine,
    Opt,
    Outcome,
    Start,
    Text,
)
from bot.service import Rehearsal
from bot.store import SqliteStore
from bot.telegram import Pacer, TelegramEdge
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def engine_with(loaded: Loaded, **policy: object) -> Engine:
    resources = loaded.engine.resources
    return Engine(dataclasses.replace(
        resources, policy=dataclasses.replace(resources.policy, **policy)))  # type: ignore[arg-type]


def consented(engine: Engine, *, adult: bool = True) -> tuple[ClientState, Outcome]:
    """A client who went through consent (core only), answering the age question."""
    state = engine.new_state("tg:42")
    out = engine.handle(state, Start(), NOW)
    out = engine.handle(out.state, Button(data=f"{out.state.keyboard}:y"), NOW)  # agree
    out = engine.handle(out.state, Button(data=f"{out.state.keyboard}:{'y' if adult else 'n'}"),
                        NOW)
    return out.state, out


def test_minor_refused_until_the_therapist_records_guardian_consent(loaded: Loaded) -> None:
    engine = engine_with(loaded, allow_minors=True)
    state, out = consented(engine, adult=False)
    assert Opt.CORE.value not in state.consents
    texts = [m.text for m in out.messages]
    assert any("guardian" in t for t in texts)

    recorded = engine.handle(state, Clinician(action="guardian-consent", by="tg:7"), NOW)
    assert recorded.messages == []  # nothing is sent to the client by a therapist's action
    assert [e.kind for e in recorded.ledger] == ["guardian_consent"]

    out = engine.handle(recorded.state, Start(), NOW)
    out = engine.handle(out.state, Button(data=f"{out.state.keyboard}:y"), NOW)  # agree
    assert out.state.consents.get(Opt.CORE.value) == engine.resources.policy.consent_version
    assert out.state.pending == ConsentQuestion(step="store_free_text")


def test_a_refused_minor_is_not_asked_their_age_again(loaded: Loaded) -> None:
    engine = engine_with(loaded, allow_minors=False)
    state, _ = consented(engine, adult=False)
    out = engine.handle(state, Start(), NOW)
    out = engine.handle(out.state, Button(data=f"{out.state.keyboard}:y"), NOW)  # agree again
    assert Opt.CORE.value not in out.state.consents
    assert out.state.pending is None  # no age question to answer differently
    assert any("only for adults" in m.text for m in out.messages)


def test_minor_refused_when_minors_are_not_allowed_even_with_guardian(loaded: Loaded) -> None:
    engine = engine_with(loaded, allow_minors=False)
    state = engine.handle(engine.new_state("tg:42"),
                          Clinician(action="guardian-consent", by="tg:7"), NOW).state
    out = engine.handle(state, Start(), NOW)
    out = engine.handle(out.state, Button(data=f"{out.state.keyboard}:y"), NOW)
    out = engine.handle(out.state, Button(data=f"{out.state.keyboard}:n"), NOW)
    assert Opt.CORE.value not in out.state.consents


def test_crisis_hold_needs_the_therapist_when_configured(loaded: Loaded) -> None:
    engine = engine_with(loaded, crisis_hold_needs_therapist=True)
    state = engine.new_state("tg:42")
    state.consents = {o.value: 1 for o in Opt}
    state.adult = True
    out = engine.handle(state, Text(text="I want to kill myself"), NOW)
    assert out.state.crisis_hold_since == NOW

    cleared = engine.handle(out.state, Clinician(action="clear-hold", by="tg:7"), NOW)
    assert cleared.state.crisis_hold_cleared_by_therapist
    assert cleared.state.crisis_hold_since == NOW  # lifts only at a fresh check-in, later
    assert [e.kind for e in cleared.ledger] == ["crisis_hold_cleared"]


async def test_clinician_commands_are_admin_only(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path
) -> None:
    config = edge_config(fake_api, tmp_path / "rehearse.db",
                         access={"mode": "allowlist", "allowlist": [1001]},
                         telegram={"poll_timeout": 1, "admins": [9000]})
    edge = TelegramEdge(config, loaded, store, pacer=Pacer(per_chat=0, overall=0))
    await edge.start()
    try:
        await fake_api.send_text(1001, "/invite first-steps")
        client = await fake_api.wait_for_messages(1001, 1)
        assert "t.me/" not in client[-1].text  # a client gets the unknown-command answer

        await fake_api.send_text(9000, "/invite first-steps 2")
        admin = await fake_api.wait_for_messages(9000, 1)
        link = admin[-1].text.rsplit("start=", 1)
        assert len(link) == 2 and len(link[1]) >= 16
        invite = (await store.list_invites())[0]
        assert invite.script_id == "first-steps" and invite.max_level == 2
        assert link[1] not in invite.code_hash

        # Only for their own clients: an allowlisted client is nobody's until assigned.
        await fake_api.send_text(9000, "/clearhold 1001")
        await fake_api.wait_for_messages(9000, 2)
        assert "not one of your clients" in fake_api.messages(9000)[-1].text
        assert "crisis_hold_cleared" not in [r.kind for r in await store.ledger("tg:1001")]
        await store.assign_therapist("tg:1001", "tg:9000", NOW)
        await fake_api.send_text(9000, "/clearhold 1001")
        await fake_api.wait_for_messages(9000, 3)
        assert "Recorded for tg:1001" in fake_api.messages(9000)[-1].text
        assert "crisis_hold_cleared" in [r.kind for r in await store.ledger("tg:1001")]

        await fake_api.send_text(9000, "/guardian 5555")
        await fake_api.wait_for_messages(9000, 4)
        assert "not one of your clients" in fake_api.messages(9000)[-1].text
    finally:
        await edge.stop(drain_seconds=1)


def test_cli_clear_hold(tmp_path: Path, loaded: Loaded,
                        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "rehearse.db"

    async def prepare() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, lambda: NOW)
            await service.handle("tg:5", "e1", Start())
            await store.assign_therapist("tg:5", "tg:9000", NOW)

    asyncio.run(prepare())
    # --by is checked: a therapist acts on their own clients only, as in Telegram.
    assert main(["clear-hold", "tg:5", "--db", str(db), "--by", "9001"]) == 1
    assert "tg:5 is not a client of 9001" in capsys.readouterr().err
    assert main(["clear-hold", "tg:5", "--db", str(db), "--by", "9000"]) == 0
    assert main(["guardian", "tg:5", "--db", str(db)]) == 0
    assert main(["clear-hold", "tg:6", "--db", str(db)]) == 1
    assert "rehearse clear-hold: no client tg:6" in capsys.readouterr().err

    async def ledger() -> list[str]:
        async with SqliteStore(db) as store:
            return [f"{r.kind}:{r.data.get('who', r.data.get('reader'))}"
                    for r in await store.ledger("tg:5")]

    kinds = asyncio.run(ledger())
    assert "access_refused:tg:9001" in kinds
    assert "crisis_hold_cleared:tg:9000" in kinds
    assert "crisis_hold_cleared:tg:9001" not in kinds
