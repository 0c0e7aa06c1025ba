"""KeyedLocks: FIFO per key, forgotten when unused, re-entrant for the holding task."""

from __future__ import annotations

import asyncio

from bot._locks import KeyedLocks


async def test_one_key_is_held_in_arrival_order_and_then_forgotten() -> None:
    locks, order = KeyedLocks(), []

    async def take(name: str) -> None:
        async with locks.hold("ada"):
            await asyncio.sleep(0)
            order.append(name)

    await asyncio.gather(*(take(n) for n in "abc"))
    assert order == ["a", "b", "c"]
    assert not len(locks) and "ada" not in locks


async def test_the_holding_task_may_hold_its_key_again_others_wait() -> None:
    locks, order = KeyedLocks(), []

    async def outer() -> None:
        async with locks.hold("ada"):
            await asyncio.sleep(0.01)
            async with locks.hold("ada"):  # the service's handle inside the edge's turn
                order.append("inner")
            assert "ada" in locks  # still held by the outer block
            order.append("outer")

    async def other() -> None:
        async with locks.hold("ada"):
            order.append("other")

    first = asyncio.create_task(outer())
    await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(first, other()), 1)
    assert order == ["inner", "outer", "other"]
    assert not len(locks)
