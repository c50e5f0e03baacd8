"""The driver's results go to the store on one background thread, off its loop.

Writing a job's files takes 2-7 ms (more on a slow or remote filesystem); on the driver's
loop that delays the next call of every other worker whose result is waiting, so GPUs sit
idle while the driver writes. One thread writes results in the order they came, through a
bounded queue (a store slower than the workers holds the loop back instead of filling
memory). The runs file is still each job's done mark, written last, so resume is unchanged:
a result still queued when the driver is killed was never done and runs again.

The first write error (a full disk: llem.store.store.StoreError) stops the writing: later results
are not written (they run again on resume), check() raises the error on the driver's loop,
and lost() names the results that were counted but never stored.
"""

from __future__ import annotations

import queue
import threading

from llem.store.run_row import Result, RunRow
from llem.store.store import Store

QUEUE = 64  # results waiting to be written before the driver's loop waits for the writer


class StoreWriter:
    def __init__(self, store: Store, maxsize: int = QUEUE) -> None:
        self.store = store
        self._queue: queue.Queue[Result | None] = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self._lost: list[RunRow] = []
        self._thread = threading.Thread(target=self._loop, name="llem-store-writer",
                                        daemon=True)
        self._thread.start()

    def put(self, result: Result) -> None:
        """Queue a result; raises the writer's error, if any, instead."""
        self.check()
        self._queue.put(result)

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write what is queued and stop the thread (errors stay for check())."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def lost(self) -> list[RunRow]:
        """The runs rows of results that were queued but not written (after an error)."""
        return list(self._lost)

    def _loop(self) -> None:
        while True:
            result = self._queue.get()
            if result is None:
                return
            if self._error is not None:
                self._lost.append(result.run)
                continue
            try:
                self.store.write_result(result)
            except BaseException as exc:
                self._error = exc
                self._lost.append(result.run)
