"""What the scheduler is doing, as Redis remembers it for every process to read (metrics, /readyz): whether a
scheduler holds the leader lock (jobs.leader) and when each job last ran without error."""

from __future__ import annotations

from app import clock
from app.extensions import get_redis, redis_key

LEADER_KEY = ("scheduler", "leader")


def leader_key() -> str:
    return redis_key(*LEADER_KEY)


def record_success(job_id: str) -> None:
    get_redis().hset(redis_key("scheduler", "last-success"), job_id, clock.now().timestamp())


def read() -> tuple[str | None, dict[str, float]]:
    """(the leader's identity or None, {job id: timestamp of its last success})."""
    r = get_redis()
    leader = r.get(leader_key())
    successes = r.hgetall(redis_key("scheduler", "last-success"))
    return (leader.decode() if leader else None,
            {job.decode(): float(at) for job, at in successes.items()})
