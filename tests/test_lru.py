"""The bounded caches the app keeps (service.lru): the least recently used entry goes first."""
from __future__ import annotations

from service.lru import Lru


def test_the_least_recently_used_entry_is_dropped_beyond_the_size():
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    cache.put("a", 10)  # kept again: replaced, and most recent
    cache.put("d", 4)
    assert (cache.get("a"), cache.get("c"), cache.get("d")) == (10, None, 4)
    cache.clear()
    assert (len(cache), cache.get("a")) == (0, None)
