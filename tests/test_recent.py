"""The edge's bounded caches forget the least recently used chats, and only those."""

from __future__ import annotations

from bot.telegram._recent import Recent


def test_recent_forgets_the_least_recently_used_beyond_its_size() -> None:
    recent: Recent[int, str] = Recent(size=3)
    for chat in (1, 2, 3):
        recent.put(chat, f"m{chat}")
    assert recent.get(1) == "m1"  # 1 is now the most recently used
    recent.put(4, "m4")
    assert 2 not in recent and len(recent) == 3
    assert [recent.get(chat) for chat in (1, 3, 4)] == ["m1", "m3", "m4"]
    recent.put(3, "m3b")  # replacing counts as a use
    recent.put(5, "m5")
    assert 1 not in recent and recent.get(3) == "m3b"


def test_recent_pop_forgets_one_entry() -> None:
    recent: Recent[str, bool] = Recent(size=2)
    recent.put("tg:1", True)
    assert recent.pop("tg:1") is True
    assert recent.pop("tg:1") is None
    assert recent.get("tg:1") is None and len(recent) == 0


def test_ten_thousand_more_chats_keep_the_cache_at_its_size() -> None:
    recent: Recent[int, int] = Recent()
    for chat in range(25_000):
        recent.put(chat, chat)
    assert len(recent) == 10_000 and 15_000 in recent and 14_999 not in recent
