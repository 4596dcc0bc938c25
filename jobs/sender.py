"""`smart-union sender`: drains the outbox. Run as many as needed; row locks keep them from sending twice.

Each loop: take back rows whose lease ran out, expand one fan-out batch, claim due rows (one short transaction),
send them with up to `notifications.in_flight` sends at once, and record each outcome in its own transaction.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Flask

from app import logs, metrics
from app.unit_of_work import unit_of_work
from app.services import channels, delivery

log = logging.getLogger(__name__)


class Sender:
    def __init__(self, app: Flask):
        self.app = app
        self.settings = app.config["SU"].notifications
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(self.settings.in_flight, thread_name_prefix="send")

    def run_forever(self) -> None:
        log.info("sender started (%s in flight)", self.settings.in_flight)
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
            except Exception:   # a deadlock victim or a lost connection: this round is rolled back, try again
                log.exception("sender round failed; retrying")
                busy = 0
            if not busy:
                self.stopping.wait(self.settings.poll_seconds)
        self.pool.shutdown(wait=True)
        log.info("sender stopped")

    def run_once(self) -> int:
        """One round; returns how much work it found (0 means the outbox is idle)."""
        with self.app.app_context():
            with unit_of_work():
                delivery.reap_expired_leases()
            with unit_of_work():
                expanded = delivery.expand_one_fanout_batch()
            with unit_of_work():
                claimed, handled = delivery.claim_due(self.settings.claim_batch)
        list(self.pool.map(self._send_one, claimed))
        return expanded + handled

    def drain(self, max_rounds: int = 100_000) -> None:
        """Runs until there is nothing to do (tests and the demo's single process)."""
        for _ in range(max_rounds):
            if not self.run_once():
                return

    def _send_one(self, claimed: delivery.Claimed) -> None:
        with self.app.app_context(), logs.request_id_scope(claimed.request_id or "-"):
            try:
                outcome = channels.send(claimed.channel, claimed.id, claimed.openid, claimed.message)
            except Exception:   # a bug must not kill the sender: the lease will bring the row back
                log.exception("sending notification %s failed unexpectedly", claimed.id)
                metrics.SENDS.labels(claimed.channel.value, "error").inc()
                return
            with unit_of_work():
                delivery.record_outcome(claimed, outcome)
            metrics.SENDS.labels(claimed.channel.value, outcome.kind).inc()
            log.info("notification %s by %s: %s%s", claimed.id, claimed.channel.value, outcome.kind,
                     f" ({outcome.reason})" if outcome.reason else "")

    def stop(self, *_args) -> None:
        self.stopping.set()


def run_sender_process(app: Flask) -> None:
    metrics.serve_own_port(app.config["SU"].metrics.port)
    sender = Sender(app)
    signal.signal(signal.SIGTERM, sender.stop)
    signal.signal(signal.SIGINT, sender.stop)
    sender.run_forever()
