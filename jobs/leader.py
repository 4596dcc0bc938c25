"""One scheduler leader at a time, through redis-py's `Lock` that the leader keeps renewing.

A second scheduler started by mistake waits; if the leader dies (even by SIGKILL) its lock expires after
`scheduler.leader_lock_seconds` and a waiting scheduler takes over. Jobs stay correct without the lock (each
is idempotent in the database); the lock only keeps two processes from doing the same work twice as fast.
The lock is not thread-local: the heartbeat that renews it runs in APScheduler's pool threads.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis as redis_lib
from redis.exceptions import LockError

log = logging.getLogger(__name__)


class LeaderLock:
    def __init__(self, redis: redis_lib.Redis, key: str, ttl_seconds: float):
        self.lock = redis.lock(key, timeout=ttl_seconds, blocking=False, thread_local=False)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"   # the lock's value
        self.is_leader = False

    def refresh(self) -> bool:
        """Renews the lock if held, else tries to take it. Returns whether this process leads now."""
        took = self._renew() if self.is_leader else False
        if not took:
            took = self.lock.acquire(blocking=False, token=self.identity)
        if took != self.is_leader:
            log.warning("scheduler %s %s leadership", self.identity, "took" if took else "lost")
        self.is_leader = took
        return took

    def _renew(self) -> bool:
        try:
            self.lock.reacquire()
            return True
        except LockError:        # expired, or taken by another scheduler meanwhile
            return False

    def release(self) -> None:
        if self.is_leader:
            try:
                self.lock.release()
            except LockError:
                pass
            self.is_leader = False
