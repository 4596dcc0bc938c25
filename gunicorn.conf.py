"""gunicorn settings for Smart Union. Override any of them on the command line or with the environment below.

Connections: every worker keeps up to database.pool_size + database.max_overflow connections, so
workers x (pool_size + max_overflow) must stay well under the database's limit (PostgreSQL: 100).
"""

import multiprocessing
import os
import shutil
import tempfile

wsgi_app = os.environ.get("SMART_UNION_WSGI_APP", "app.wsgi:app")
bind = os.environ.get("SMART_UNION_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SMART_UNION_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("SMART_UNION_THREADS", 4))
timeout = 30            # WeChat gives up after 5 s; a request stuck for 30 s is a bug worth a restart
graceful_timeout = 20
keepalive = 5
max_requests = 5000     # recycle workers now and then, with jitter so they don't restart together
max_requests_jitter = 500
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


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, metrics_dir)
