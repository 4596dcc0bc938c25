"""One scheduler leader at a time, through a Redis lock that the leader keeps renewing.

A second scheduler started by mistake waits; if the leader dies (even by SIGKILL) its lock expires after
`scheduler.leader_lock_seconds` and a waiting scheduler takes over. Jobs stay correct without the lock (each
is idempotent in the database); the lock only keeps two processes from doing the same work twice as fast.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis as redis_lib

log = logging.getLogger(__name__)

# Renew only if we still hold it: compare-and-extend in one step.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaderLock:
    def __init__(self, redis: redis_lib.Redis, key: str, ttl_seconds: float):
        self.redis = redis
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.is_leader = False

    def refresh(self) -> bool:
        """Renews the lock if held, else tries to take it. Returns whether this process leads now."""
        if self.is_leader and self.redis.eval(RENEW, 1, self.key, self.identity, self.ttl_ms):
            return True
        took = bool(self.redis.set(self.key, self.identity, nx=True, px=self.ttl_ms))
        if took != self.is_leader:
            log.warning("scheduler %s %s leadership", self.identity, "took" if took else "lost")
        self.is_leader = took
        return took

    def release(self) -> None:
        if self.is_leader:
            self.redis.eval(RELEASE, 1, self.key, self.identity)
            self.is_leader = False
