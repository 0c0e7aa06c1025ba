"""A bounded memory of recently seen chats, so the edge's caches stay flat in idle clients."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")

#: Entries kept per cache: the chats active in the last while, not everyone ever seen.
RECENT_CHATS = 10_000


class Recent(Generic[_K, _V]):
    """A mapping that forgets its least recently used entries beyond ``size``.

    Only for caches whose loss costs a lookup, never correctness: an admitted client is
    looked up in the store again, a forgotten keyboard stays visible (a press on it is
    answered kindly).
    """

    def __init__(self, size: int = RECENT_CHATS) -> None:
        self._size = size
        self._entries: OrderedDict[_K, _V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _K) -> _V | None:
        """The value for ``key`` (marking it recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        """Remember ``key``, forgetting the least recently used entry when full."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def pop(self, key: _K) -> _V | None:
        """Forget ``key``; its value, or None."""
        return self._entries.pop(key, None)
