"""`smart-union scheduler`: APScheduler 3 in its own process (never inside gunicorn workers).

Every job of jobs/schedule.py is registered with a stable id, `replace_existing=True, coalesce=True,
max_instances=1`, on an interval of `scheduler.tick_seconds`. A job runs only while this process holds the
leader lock; each run is one unit of work in its own app context.
"""

from __future__ import annotations

import gc
import logging
import signal
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from app import clock, logs, metrics
from app.services import scheduler_state
from app.unit_of_work import unit_of_work
from jobs.leader import LeaderLock
from jobs.schedule import JobSpec, schedule

log = logging.getLogger(__name__)
logging.getLogger("apscheduler").setLevel(logging.WARNING)   # one INFO line per tick is noise


class JobRunner:
    def __init__(self, app: Flask):
        self.app = app
        self.settings = app.config["SU"].scheduler
        with app.app_context():
            key = scheduler_state.leader_key()
        self.leader = LeaderLock(app.extensions["redis"], key, self.settings.leader_lock_seconds)

    def heartbeat(self) -> None:
        self.leader.refresh()

    def run_job(self, spec: JobSpec) -> int:
        """One run of one job in its own unit of work; notices it writes carry the run's id (app.logs)."""
        if not self.leader.is_leader:
            return 0
        with self.app.app_context(), logs.request_id_scope(f"job:{spec.id}:{logs.new_request_id()[:8]}"):
            try:
                with unit_of_work():
                    done = spec.run(clock.now())
            except Exception:
                metrics.JOB_RUNS.labels(spec.id, "failed").inc()
                raise
            metrics.JOB_RUNS.labels(spec.id, "ok").inc()
            scheduler_state.record_success(spec.id)
            if done:
                log.info("job %s did %s", spec.id, done)
        return done

    def attach(self, scheduler) -> None:
        self.heartbeat()
        scheduler.add_job(self.heartbeat, "interval", seconds=self.settings.leader_lock_seconds / 3,
                          id="scheduler.leader", replace_existing=True, coalesce=True, max_instances=1,
                          next_run_time=_soon())
        for spec in schedule():
            scheduler.add_job(self._safe, "interval", args=[spec], seconds=self.settings.tick_seconds, id=spec.id,
                              name=spec.summary, replace_existing=True, coalesce=True, max_instances=1,
                              next_run_time=_soon())

    def _safe(self, spec: JobSpec) -> None:
        try:
            self.run_job(spec)
        except Exception:   # logged and retried on the next tick; the unit of work rolled back
            log.exception("job %s failed", spec.id)


def _soon() -> datetime:
    """APScheduler's own time (real time, not the app's clock, which tests may move)."""
    return datetime.now(timezone.utc)


def run_scheduler_process(app: Flask) -> None:
    gc.freeze()         # the loaded app, kept for the process's life: never walked by the collector again
    metrics.serve_own_port(app.config["SU"].metrics.port)
    runner = JobRunner(app)
    scheduler = BlockingScheduler(timezone=app.config["SU"].app.timezone)
    runner.attach(scheduler)

    def stop(*_args):
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler %s started", runner.leader.identity)
    try:
        scheduler.start()
    finally:
        runner.leader.release()


def start_background_scheduler(app: Flask) -> BackgroundScheduler:
    """The embedded demo's scheduler, inside its single process."""
    runner = JobRunner(app)
    scheduler = BackgroundScheduler(timezone=app.config["SU"].app.timezone)
    runner.attach(scheduler)
    scheduler.start()
    return scheduler
