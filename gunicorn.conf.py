"""gunicorn settings for Smart Union. Override any of them on the command line or with the environment below.

Connections: every worker keeps up to database.pool_size + database.max_overflow connections, so
workers x (pool_size + max_overflow) must stay well under the database's limit (PostgreSQL: 100).
"""

import gc
import multiprocessing
import os
import shutil
import tempfile

wsgi_app = os.environ.get("SMART_UNION_WSGI_APP", "app.wsgi:app")
bind = os.environ.get("SMART_UNION_BIND", "127.0.0.1:8000")
# Measured on 2 cores with the benches (bench/, GUNICORN_CMD_ARGS="--threads T" and --workers W, 2026-11-30):
#   workers x threads   GET /api/v1/me ÷ bare   signup req/s (p99 ms)   event detail req/s
#   5 x 4                      0.37x                198 (630)                402
#   5 x 2                      0.34x                192 (628)                369
#   5 x 1                      0.36x                181 (782)                327
#   8 x 2                      0.34x                165 (1180)               298
# Fewer threads did not shorten the seat lock's hold (the signup's p99 rose instead), and more processes only added
# context switches; requests wait on PostgreSQL and Redis more than on the GIL, so 2 x cores + 1 workers with 4
# threads each stays the default.
workers = int(os.environ.get("SMART_UNION_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("SMART_UNION_THREADS", 4))
timeout = 30            # WeChat gives up after 5 s; a request stuck for 30 s is a bug worth a restart
graceful_timeout = 20
keepalive = 5
max_requests = 5000     # recycle workers now and then, with jitter so they don't restart together
max_requests_jitter = 500
# The app is imported once, in the master, and each worker is forked from it: starting a worker (and so each
# recycling) then costs a fork instead of ~1.8 s of CPU importing and building the app, which at 5,000 requests a
# worker was 0.36 ms a request, a third of a WeChat retry's whole cost (bench/, 2026-12-01). New code therefore
# needs a restart of gunicorn, not a HUP. Nothing is connected in the master (post_fork drops any pool anyway).
preload_app = True
accesslog = os.environ.get("SMART_UNION_ACCESS_LOG", "-")
# The path without its query string (%(U)s, not %(r)s), and no referer: /wechat/mp's query carries a signature that
# would let anyone replay it, and other queries carry names and search terms.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'
errorlog = "-"

# Metrics (app/metrics.py): every worker writes its counters to one directory, set here before any worker imports
# prometheus_client, wiped when gunicorn starts, and cleared of each worker that exits; /metrics sums them. A sender
# or scheduler on the same host joins the sum by getting the same PROMETHEUS_MULTIPROC_DIR (start them after gunicorn).
metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                    os.path.join(tempfile.gettempdir(), f"smart-union-metrics-{os.getpid()}"))


def on_starting(server):
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)


def pre_fork(server, worker):
    """The loaded app's objects (about 180,000 of them) live as long as the worker: frozen, the worker's collector
    never walks them. Walked, a full collection took 90 ms of a worker's time (its first came soon after each
    recycle), and its writes to their headers copied the master's memory pages into the worker."""
    gc.freeze()


def post_worker_init(worker):
    """A worker never shares the master's database connections: SQLAlchemy's advice for forked processes. (redis-py
    notices the fork by itself, and prometheus_client's multiprocess values too.)"""
    engine = getattr(worker.wsgi, "extensions", {}).get("db.engine") if preload_app else None
    if engine is not None:
        engine.dispose(close=False)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, metrics_dir)
