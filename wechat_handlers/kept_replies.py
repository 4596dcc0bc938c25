"""Replies kept for WeChat's retries of a push (wechat_handlers.push), written to Redis without a round trip of their
own.

A handled push's reply waits here, in its process, until the next push's claim carries it to Redis in the same
script (`carried`): under load, a push makes one round trip to Redis instead of two, and on a 2-core VM, where every
exchange over loopback costs tens of microseconds of system time on both sides, that round trip was a quarter of a
push's CPU. When no push comes along, a flusher thread writes what waits within FLUSH_SECONDS. Until a reply is
written, a retry finds the push's claim still pending and polls for it (wechat_handlers.push), as it does while the
first delivery is at work. A process that exits writes what still waits; one killed outright loses at most
FLUSH_SECONDS of replies: their retries are answered "success", as when a handler fails, and nothing runs twice
(the claim stays).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref

from flask import Flask
from redis.exceptions import RedisError

from app.extensions import ScriptCall, run_scripts, this_app

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.02
IDLE_ROUNDS = 50          # the flusher stops after this many rounds with nothing to write (started again on need)

_STORE = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[2 * i - 1], 'EX', ARGV[2 * i])
end
return #KEYS
"""

_EVERY = weakref.WeakSet()


class KeptReplies:
    def __init__(self, app: Flask):
        self.app = weakref.ref(app)
        self.lock = threading.Lock()
        self.writing = threading.Lock()       # one flush at a time: a flush returns once all that waited is written
        self.waiting: list[tuple[str, bytes, int]] = []
        self.flusher: threading.Thread | None = None
        self.failing_since: float | None = None    # Redis unreachable since then: warned once per outage
        _EVERY.add(self)

    def keep(self, key: str, reply: bytes, seconds: int) -> None:
        with self.lock:
            self.waiting.append((key, reply, seconds))
            if self.flusher is None or not self.flusher.is_alive():    # none yet, or not in this forked process
                self.flusher = threading.Thread(target=self._flush_while_busy, name="kept-replies", daemon=True)
                self.flusher.start()

    def carried(self) -> tuple[ScriptCall | None, list]:
        """What waits, as a call to run ahead of a claim in its round trip, and the replies it takes (to give back
        with `give_back` when that round trip fails)."""
        with self.lock:
            taken, self.waiting = self.waiting, []
        if not taken:
            return None, taken
        return ScriptCall(_STORE, tuple(key for key, _, _ in taken),
                          tuple(value for _, reply, seconds in taken for value in (reply, seconds))), taken

    def give_back(self, taken: list) -> None:
        with self.lock:
            self.waiting[:0] = taken

    def flush(self) -> None:
        """Writes what waits now, and returns once any write the flusher was making is done too (raises
        RedisError, having given the replies back, when Redis cannot be reached)."""
        with self.writing:
            call, taken = self.carried()
            if call is None:
                return
            try:
                run_scripts([call])
            except RedisError:
                self.give_back(taken)
                raise

    def _flush_while_busy(self) -> None:
        idle = 0
        while True:
            time.sleep(FLUSH_SECONDS)
            with self.lock:
                idle = 0 if self.waiting else idle + 1
                if idle >= IDLE_ROUNDS or self.app() is None:
                    self.flusher = None          # under the lock: a reply kept from now on starts another
                    return
            if idle:
                self._note_written()             # what waited went with pushes: Redis answers again
            else:
                self._flush_in(self.app())

    def _flush_in(self, app: Flask | None) -> None:
        if app is None:
            return
        try:
            with app.app_context():
                self.flush()
        except RedisError:
            with self.lock:
                first, self.failing_since = self.failing_since is None, self.failing_since or time.monotonic()
            if first:
                log.warning("kept replies not written yet (Redis unavailable); trying again every %.0f ms",
                            FLUSH_SECONDS * 1000)
            return
        self._note_written()

    def _note_written(self) -> None:
        """Says once that an outage is over, so that the next one is said again."""
        with self.lock:
            since, self.failing_since = self.failing_since, None
        if since is not None:
            log.warning("kept replies written again, after %.1f s with Redis unavailable", time.monotonic() - since)


def kept_replies() -> KeptReplies:
    app = this_app()
    found = app.extensions.get("mp.kept_replies")
    if found is None:
        found = app.extensions["mp.kept_replies"] = KeptReplies(app)
    return found


@atexit.register
def _write_before_exit() -> None:
    for keeper in list(_EVERY):
        if keeper.waiting:
            keeper._flush_in(keeper.app())
