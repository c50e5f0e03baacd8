"""Running groups ranked by what one more worker would gain them, each group once.

An indexed binary heap: a group's key is set in place (O(log n)) whenever its jobs, workers
or timing change, and the first k groups are read in order without taking them out
(O(k log k)). A plain heap with stale entries left behind did the same until, at 10,000
GPUs, one event met thousands of stale entries at once (3-5 ms); here nothing goes stale.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator


class Ranked:
    """ids with a key, largest key first (ties: smaller id first)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []  # (-key, id), a binary min-heap
        self._pos: dict[int, int] = {}  # id -> its index in _heap

    def __len__(self) -> int:
        return len(self._heap)

    def __contains__(self, key: int) -> bool:
        return key in self._pos

    def set(self, item: int, key: float) -> None:
        """Add item, or move it to its new key."""
        i = self._pos.get(item)
        if i is None:
            self._heap.append((-key, item))
            self._pos[item] = len(self._heap) - 1
            self._up(len(self._heap) - 1)
        else:
            self._heap[i] = (-key, item)
            self._up(i)
            self._down(self._pos[item])

    def drop(self, item: int) -> None:
        """Take item out (nothing when it is not in)."""
        i = self._pos.pop(item, None)
        if i is None:
            return
        last = self._heap.pop()
        if i < len(self._heap):
            self._heap[i] = last
            self._pos[last[1]] = i
            self._up(i)
            self._down(self._pos[last[1]])

    def first(self, k: int) -> Iterator[int]:
        """Up to k items, largest key first, none taken out: a best-first walk of the
        heap's tree (a node's children are never ahead of it)."""
        h = self._heap
        if not h:
            return
        todo = [(h[0], 0)]
        for _ in range(k):
            if not todo:
                return
            (_, item), i = heapq.heappop(todo)
            yield item
            for c in (2 * i + 1, 2 * i + 2):
                if c < len(h):
                    heapq.heappush(todo, (h[c], c))

    def _up(self, i: int) -> None:
        h, pos = self._heap, self._pos
        e = h[i]
        while i:
            p = (i - 1) // 2
            if h[p] <= e:
                break
            h[i] = h[p]
            pos[h[i][1]] = i
            i = p
        h[i] = e
        pos[e[1]] = i

    def _down(self, i: int) -> None:
        h, pos, n = self._heap, self._pos, len(self._heap)
        e = h[i]
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and h[c + 1] < h[c]:
                c += 1
            if e <= h[c]:
                break
            h[i] = h[c]
            pos[h[i][1]] = i
            i = c
        h[i] = e
        pos[e[1]] = i
