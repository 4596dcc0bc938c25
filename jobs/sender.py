"""`smart-union sender`: drains the outbox. Run as many as needed; row locks keep them from sending twice.

Each round: take back rows whose lease ran out, expand one fan-out batch, claim due rows (one short transaction)
and hand them to `notifications.in_flight` sending threads. The round ends once only the last wave is still out:
the next round claims while those sends run, so the sends never stop for a claim. Outcomes are recorded together:
one transaction at the end of each round, or sooner when the oldest has waited `outcome_max_age_seconds` (a slow
WeChat must not hold finished rows in "sending" for long). A sender that dies loses only outcomes not yet written:
their rows come back after the lease, when WeChat still drops a repeated template message by its client_msg_id.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from flask import Flask

from app import logs, metrics
from app.unit_of_work import retrying_lost_races, unit_of_work
from app.services import channels, delivery

log = logging.getLogger(__name__)
MIN_WATCH_SECONDS = 0.05


class Sender:
    def __init__(self, app: Flask):
        self.app = app
        self.settings = app.config["SU"].notifications
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(self.settings.in_flight, thread_name_prefix="send")
        self.outcomes = Outcomes(app, self.settings.outcome_max_age_seconds)
        self.out = 0                              # sends handed to the pool and not over yet
        self.fewer_out = threading.Condition()

    def run_forever(self) -> None:
        log.info("sender started (%s in flight)", self.settings.in_flight)
        warn_if_a_round_may_outlast_its_lease(self.app.config["SU"])
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
            except Exception:   # a deadlock victim or a lost connection: this round is rolled back, try again
                log.exception("sender round failed; retrying")
                self.outcomes.write_if_due()        # the last round's sends are still recorded on time
                busy = 0
            if not busy:
                self.stopping.wait(self.settings.poll_seconds)
        self._wait_for_sends(0)
        self.pool.shutdown(wait=True)
        log.info("sender stopped")

    def run_once(self) -> int:
        """One round; returns how much work it found, the sends it found unsettled counted too (their outcomes may
        bring a row back at once). It returns with its last wave of sends still out, except when it claimed
        nothing: then every send is over and recorded (0 means the outbox is idle)."""
        unsettled = self.out + self.outcomes.waiting_count()      # a send's outcome waits before its count drops
        with self.app.app_context():
            with unit_of_work():
                delivery.reap_expired_leases()
            with unit_of_work():
                expanded = delivery.expand_one_fanout_batch()
            with unit_of_work():
                claimed, handled = delivery.claim_due(self.settings.claim_batch)
        with self.fewer_out:
            self.out += len(claimed)
        for item in claimed:
            self.pool.submit(self._send_one, item)
        self._wait_for_sends(self.settings.in_flight if claimed else 0)
        return expanded + handled + unsettled

    def drain(self, max_rounds: int = 100_000) -> None:
        """Runs until there is nothing to do (tests and the demo's single process)."""
        for _ in range(max_rounds):
            if not self.run_once():
                return

    def _wait_for_sends(self, still_out: int) -> None:
        """Until at most `still_out` sends are out (with `in_flight`: the last wave, none waiting for a thread), then
        the outcomes so far written; meanwhile an aged outcome is written at its time."""
        while True:
            with self.fewer_out:
                if self.out <= still_out or self.fewer_out.wait(self.outcomes.seconds_until_due()) \
                        and self.out <= still_out:
                    break
            self.outcomes.write_if_due()
        self.outcomes.write()

    def _send_one(self, claimed: delivery.Claimed) -> None:
        try:
            with self.app.app_context(), logs.request_id_scope(claimed.request_id or "-"):
                try:
                    outcome = channels.send(claimed.channel, claimed.id, claimed.openid, claimed.message)
                except Exception:   # a bug must not kill the sender: the lease will bring the row back
                    log.exception("sending notification %s failed unexpectedly", claimed.id)
                    metrics.SENDS.labels(claimed.channel.value, "error").inc()
                    return
                metrics.SENDS.labels(claimed.channel.value, outcome.kind).inc()
                self.outcomes.add(claimed, outcome)
        finally:
            with self.fewer_out:
                self.out -= 1
                if self.out <= self.settings.in_flight:     # the only counts a round waits for
                    self.fewer_out.notify()

    def stop(self, *_args) -> None:
        self.stopping.set()


def warn_if_a_round_may_outlast_its_lease(cfg) -> bool:
    """A round claims claim_batch rows and sends them in_flight at a time, after the last wave of the round before.
    Were every send to time out, both on connecting and on reading (wechat.timeout_seconds each), the round's last
    outcomes would be written only after (ceil(claim_batch / in_flight) + 1) x 2 x timeout + outcome_max_age_seconds:
    past the lease, their rows would be taken back meanwhile (a template message sent again, which WeChat drops by
    its client_msg_id; a subscribe message marked "unknown" although it went out once)."""
    s = cfg.notifications
    waves = math.ceil(s.claim_batch / s.in_flight) + 1
    worst = waves * 2 * cfg.wechat.timeout_seconds + s.outcome_max_age_seconds
    if worst <= s.lease_seconds:
        return False
    log.warning("notifications.claim_batch %d with in_flight %d: a round whose sends all time out ends after %.0f s, "
                "past lease_seconds (%d); lower claim_batch or raise in_flight", s.claim_batch, s.in_flight, worst,
                s.lease_seconds)
    return True


class Outcomes:
    """The outcomes of this sender's sends, waiting to be written together (see the module's docstring)."""

    def __init__(self, app: Flask, max_age_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        self.app, self.max_age, self.monotonic = app, max_age_seconds, monotonic
        self.lock = threading.Lock()
        self.waiting: list[tuple[delivery.Claimed, channels.Outcome]] = []
        self.unlogged: list[tuple[delivery.Claimed, channels.Outcome]] = []
        self.oldest: float | None = None

    def add(self, claimed: delivery.Claimed, outcome: channels.Outcome) -> None:
        with self.lock:
            self.waiting.append((claimed, outcome))
            self.unlogged.append((claimed, outcome))
            self.oldest = self.oldest if self.oldest is not None else self.monotonic()
        self.write_if_due()

    def waiting_count(self) -> int:
        with self.lock:
            return len(self.waiting)

    def seconds_until_due(self) -> float:
        """How long the round may wait for its sends before the oldest outcome is due (at least a moment, so a
        write that keeps failing does not spin)."""
        with self.lock:
            left = self.max_age if self.oldest is None else self.max_age - (self.monotonic() - self.oldest)
        return max(MIN_WATCH_SECONDS, left)

    def write_if_due(self) -> None:
        with self.lock:
            due = self.oldest is not None and self.monotonic() - self.oldest >= self.max_age
        if due:
            self.write()

    def write(self) -> None:
        """Writes what waits, in one transaction. Should that fail, each outcome is tried in its own, and one that
        still fails is logged and dropped (its row comes back after its lease, as if this sender had died): one bad
        outcome must not hold back every later one. Each send's line is logged here, by the one thread that writes:
        logged from the sending threads, the lines cost them a tenth of a send's CPU in lock and GIL handovers."""
        with self.lock:
            batch, self.waiting, self.oldest = self.waiting, [], None
            fresh, self.unlogged = self.unlogged, []
        _log_sends(fresh)
        if not batch:
            return
        with self.app.app_context():
            try:
                retrying_lost_races(lambda: self._record(batch))
            except Exception:
                log.exception("writing %d send outcomes together failed; writing them one by one", len(batch))
                for item in batch:
                    self._record_alone(item)

    def _record_alone(self, item: tuple[delivery.Claimed, channels.Outcome]) -> None:
        try:
            retrying_lost_races(lambda: self._record([item]))
        except Exception:
            log.exception("outcome of notification %s not written; its row comes back after its lease", item[0].id)

    @staticmethod
    def _record(batch: list[tuple[delivery.Claimed, channels.Outcome]]) -> None:
        with unit_of_work():
            delivery.record_outcomes(batch)


def _log_sends(sent: list[tuple[delivery.Claimed, channels.Outcome]]) -> None:
    for claimed, outcome in sent:
        with logs.request_id_scope(claimed.request_id or "-"):
            log.info("notification %s by %s: %s%s", claimed.id, claimed.channel.value, outcome.kind,
                     f" ({outcome.reason})" if outcome.reason else "")


def run_sender_process(app: Flask) -> None:
    gc.freeze()         # the loaded app, kept for the process's life: never walked by the collector again
    metrics.serve_own_port(app.config["SU"].metrics.port)
    sender = Sender(app)
    signal.signal(signal.SIGTERM, sender.stop)
    signal.signal(signal.SIGINT, sender.stop)
    sender.run_forever()
