"""The client's safety plan on Telegram, end to end against the fake Bot API server: the
client writes it with /safetyplan; /sos and crisis words show it right after the emergency
number; a therapist suggests wording with /safetyplan CLIENT, which only the client's press
makes theirs; another therapist is refused (and the client's ledger says so); /delete
erases every version. Real bot, real engine, a real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.app import Loaded
from bot.engine import COMMANDS
from bot.store import Store
from bot.telegram import TelegramEdge
from tests.conftest import Clock, edge_config
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import (
    TelegramClient,
    give_consent,
    labels,
    plain,
    running_edge,
    settle,
    transcript,
)
from tests.test_therapist_telegram import ADA, LEE, RIVERA

pytestmark = pytest.mark.backends
QUESTION = "Are you safe right now?"


@pytest.fixture
async def bot(fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str,
              clock: Clock) -> AsyncIterator[TelegramEdge]:
    """The bot of the therapists' tests: invite-only, Dr Lee and Dr Rivera, the test clock."""
    config = edge_config(fake_api, database, telegram={"poll_timeout": 1, "admins": [LEE, RIVERA]})
    async with running_edge(config, loaded, store, clock=clock) as edge:
        yield edge


async def lees_client(fake_api: FakeBotApi, *, share: bool) -> tuple[TelegramClient,
                                                                      TelegramClient]:
    """Dr Lee invites Ada in the chat; Ada redeems the code and consents."""
    lee = TelegramClient(fake_api, LEE, "Dr Lee")
    await lee.send("/invite first-steps")
    [reply] = await lee.next()
    link = re.search(r"start=(\S+)", reply.text)
    assert link is not None
    ada = TelegramClient(fake_api, ADA, "Ada")
    await ada.send(f"/start {link.group(1)}")
    await give_consent(ada, share=share)
    await ada.until(lambda m: "Which exercise" in m.text)
    return lee, ada


async def test_a_client_writes_their_plan_and_sos_and_crisis_words_show_it_first(
    bot: TelegramEdge, fake_api: FakeBotApi, store: Store
) -> None:
    assert "safetyplan" in [c["command"] for c in fake_api.commands]
    assert [c["command"] for c in fake_api.commands] == list(COMMANDS)
    _, ada = await lees_client(fake_api, share=False)
    await ada.send("/safetyplan")
    intro = await ada.next_one()
    assert "it is saved" in plain(intro.text) and labels(intro) == ["Write my plan", "Not now"]
    await ada.press("Write my plan")
    first = await ada.next_one()
    assert plain(first.text).startswith("1 of 6: My warning signs")
    await ada.send("When I stop answering my phone")
    await ada.until(lambda m: plain(m.text).startswith("2 of 6"))
    await ada.press("Skip this part")
    await ada.until(lambda m: plain(m.text).startswith("3 of 6"))
    await ada.press("Skip this part")
    await ada.until(lambda m: plain(m.text).startswith("4 of 6"))
    await ada.send("My sister Jo, 0123 456 789")
    for number in (5, 6):
        await ada.until(lambda m, n=number: plain(m.text).startswith(f"{n} of 6"))
        await ada.press("Skip this part")
    [overview] = await ada.next()  # the whole plan, then what to do with it: one message
    assert "When I stop answering my phone" in overview.text and "Jo, 0123" in overview.text
    assert labels(overview) == ["Change a part", "Done"]
    await ada.press("Done")
    read = await ada.until(lambda m: "Which exercise" in m.text)  # back to what was asked
    assert "Your plan is saved" in transcript(m.text for m in read).split("Which exercise")[0]

    # /sos: the plan right after the emergency number, in the very first message
    await ada.send("/sos")
    read = await ada.until(lambda m: QUESTION in m.text)
    sos, question = read[0], read[-1]
    text = plain(sos.text)
    assert text.startswith("If you or anyone else is in danger right now, call 911.")
    assert text.index("911") < text.index("When I stop answering") < text.index("988")
    assert labels(question) == ["Yes, I'm safe", "No, I'm not safe", "Not sure"]
    await ada.press("Yes, I'm safe")
    await ada.next_one()

    # crisis words: the same
    await ada.send("i want to kill myself")
    [crisis, *_] = await ada.until(lambda m: QUESTION in m.text)
    assert plain(crisis.text).index("call 911") < plain(crisis.text).index("Jo, 0123")
    await settle(fake_api, store)
    versions = await store.safety_plans(f"tg:{ADA}")
    assert [list(v.changed) for v in versions] == [["warning_signs"], ["people_to_ask"]]
    ledger = str([r.data for r in await store.ledger(f"tg:{ADA}")])
    assert "answering my phone" not in ledger and "kill" not in ledger

    # /delete erases every version
    await ada.send("/delete")
    await ada.until(lambda m: "Yes, delete everything" in str(m.reply_markup))
    await ada.press("Yes, delete everything")
    await ada.until(lambda m: "has been erased" in m.text)
    await settle(fake_api, store)
    assert await store.safety_plans(f"tg:{ADA}") == []


async def test_a_therapists_suggestion_needs_the_clients_yes_and_others_are_refused(
    bot: TelegramEdge, fake_api: FakeBotApi, store: Store
) -> None:
    lee, ada = await lees_client(fake_api, share=True)
    rivera = TelegramClient(fake_api, RIVERA, "Dr Rivera")

    # another therapist's client: refused, and the client's ledger says so
    await rivera.send(f"/safetyplan {ADA}\ninternal_coping: Something else")
    [refused] = await rivera.next()
    assert refused.text == f"tg:{ADA} is not one of your clients. /clients lists yours."
    await rivera.send(f"/safetyplan {ADA}")
    await rivera.next()
    await settle(fake_api, store)
    assert await store.safety_plans(f"tg:{ADA}") == []
    rows = [(r.kind, r.data) for r in await store.ledger(f"tg:{ADA}")
            if r.kind == "access_refused"]
    assert rows == [("access_refused", {"reader": "tg:9001", "what": "safety-plan"})] * 2

    # Dr Lee suggests two parts, in two commands: the client is told, nothing is theirs yet
    await lee.send(f"/safetyplan {ADA}\ninternal_coping: Cold water on my face")
    [done] = await lee.next()
    assert "Suggested wording for internal_coping" in done.text
    await lee.send(f"/safetyplan {ADA} professionals: Dr Lee, 555-0100")
    await lee.next()
    note = await ada.until(lambda m: "suggested some wording" in m.text)
    assert "Cold water" not in note[-1].text
    await settle(fake_api, store)
    suggested = await store.safety_plans(f"tg:{ADA}")
    assert [(v.author, v.status) for v in suggested] == [("tg:9000", "suggested")] * 2
    assert suggested[-1].parts["internal_coping"] == "Cold water on my face"  # merged
    assert suggested[-1].parts["professionals"] == "Dr Lee, 555-0100"
    await ada.send("/sos")
    [sos, *_] = await ada.until(lambda m: QUESTION in m.text)
    assert "Cold water" not in sos.text
    await ada.press("Yes, I'm safe")
    await ada.next_one()

    # the client uses one suggestion and writes their own instead of the other
    await ada.send("/safetyplan")
    await ada.until(lambda m: "Write my plan" in labels(m))
    await ada.press("Write my plan")
    await ada.until(lambda m: plain(m.text).startswith("1 of 6"))
    await ada.press("Skip this part")
    part = await ada.until(lambda m: plain(m.text).startswith("2 of 6"))
    assert "Your therapist suggested:\nCold water on my face" in plain(part[-1].text)
    await ada.press("Use this wording")
    for number in (3, 4):
        await ada.until(lambda m, n=number: plain(m.text).startswith(f"{n} of 6"))
        await ada.press("Skip this part")
    await ada.until(lambda m: plain(m.text).startswith("5 of 6"))
    await ada.send("My GP, 555-0199")
    await ada.until(lambda m: plain(m.text).startswith("6 of 6"))
    await ada.press("Skip this part")
    await ada.until(lambda m: "Change a part" in labels(m))
    await settle(fake_api, store)
    versions = await store.safety_plans(f"tg:{ADA}")
    accepted = [v for v in versions if v.status == "accepted"]
    assert [(v.author, v.suggestion) for v in accepted] == [("client", 2), ("client", None)]
    assert dict(accepted[-1].parts)["internal_coping"] == "Cold water on my face"
    assert dict(accepted[-1].parts)["professionals"] == "My GP, 555-0199"

    # the client shares with Dr Lee: she can read the plan, and the read is in the ledger
    await lee.send(f"/safetyplan {ADA}")
    [shown] = await lee.next()
    assert "My GP, 555-0199" in shown.text and "Cold water" in shown.text
    await settle(fake_api, store)
    assert (await store.ledger(f"tg:{ADA}"))[-1].data == {"reader": "tg:9000",
                                                         "what": "safety-plan"}


async def test_without_sharing_the_therapist_sees_no_plan_and_a_bad_command_is_explained(
    bot: TelegramEdge, fake_api: FakeBotApi, store: Store
) -> None:
    lee, ada = await lees_client(fake_api, share=False)
    await ada.send("/safetyplan")
    await ada.until(lambda m: "Write my plan" in labels(m))
    await ada.press("Write my plan")
    await ada.until(lambda m: plain(m.text).startswith("1 of 6"))
    await ada.send("Not sleeping")
    await ada.until(lambda m: plain(m.text).startswith("2 of 6"))
    await settle(fake_api, store)
    await lee.send(f"/safetyplan {ADA}")
    [private] = await lee.next()
    assert "stays private" in private.text and "Not sleeping" not in private.text
    await lee.send(f"/safetyplan {ADA}\ncoping_steps: x")
    [bad] = await lee.next()
    assert "not a part of the safety plan: coping_steps" in bad.text
    await lee.send("/safetyplan nobody")
    [usage] = await lee.next()
    assert usage.text.startswith("Usage: /safetyplan CLIENT")
    await lee.send("/safetyplan")  # Dr Lee's own plan, as a client: the engine answers
    await settle(fake_api, store)
    assert all("Usage" not in m.text for m in lee.unread)
