"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py server:app``.

Every frame is CPU work (FaceMesh and the image measures, ~8 ms), so the service runs one
worker process per core; a few threads per worker overlap the request parsing, SQLite and the
parts of the analysis that release the GIL. Resources (SQLite connections, FaceMesh graphs,
the LLM client, the decision thread pool) are created lazily in each worker after the fork,
so ``preload_app`` stays off: MediaPipe graphs must never cross a fork.

Environment: KYC_HOST / KYC_PORT (bind), KYC_WORKERS (default: the cores this process may
use), KYC_THREADS (default 4), KYC_PIN_WORKERS (default auto: each worker on a core of its
own when there is one worker per core; 1: always; 0: never), KYC_CLIENT_TIMEOUT_S (default
10: a client that stalls longer is dropped, see kyc_llm/web/worker.py), KYC_ACCESS_LOG=1 to
log requests to stdout (request lines carry no tokens).
"""

import multiprocessing
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # kyc_llm, whatever the working directory
from kyc_llm.errors import KycError  # noqa: E402


def _number(name: str, default: int, low: int, high: int) -> int:
    """An integer setting from the environment; a bad one stops the start with one line."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and low <= int(raw) <= high):
        raise SystemExit(f"gunicorn.conf.py: {name} must be an integer from {low} to {high}, not {raw!r}")
    return int(raw)


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or "").strip() or default
    if raw not in choices:
        raise SystemExit(f"gunicorn.conf.py: {name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


bind = f"{os.environ.get('KYC_HOST', '127.0.0.1')}:{_number('KYC_PORT', 8000, 1, 65535)}"
# The cores this process may use (a container's cpuset), not all the machine has.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else multiprocessing.cpu_count()
workers = _number("KYC_WORKERS", _cores, 1, 64)
worker_class = "kyc_llm.web.worker.BalancedThreadWorker"  # gthread, balanced: see that module
try:  # it reads KYC_CLIENT_TIMEOUT_S on import; a refusal in gunicorn's own import is a traceback
    import kyc_llm.web.worker  # noqa: E402, F401
except KycError as exc:
    raise SystemExit(f"gunicorn.conf.py: {exc.message}")
threads = _number("KYC_THREADS", 4, 1, 64)
# gthread's main loop reports to the arbiter while its threads work, so this bounds a hung
# worker process, not a slow request: /complete bounds itself (KYC_DECISION_TIMEOUT_S).
timeout = 60
graceful_timeout = 30
# CPU-bound workers must share the load. The worker class (kyc_llm/web/worker.py) stops
# accepting while all its threads are busy, so a new connection goes to a worker with a free
# thread. A keep-alive connection would still stay with the worker that accepted it (long-lived
# browser connections piled onto one worker: 3:1 CPU split), so each connection is closed after
# its response; behind a reverse proxy that keeps its own client connections this costs one
# local TCP handshake. Do not cap worker_connections (gunicorn's default is 1000): when a
# gthread worker holds its cap of accepted connections and none has sent a request yet, its
# loop spins at 100% CPU and never reads them; a cap at the thread count let 8 idle
# connections stop the whole server (tests/test_gunicorn.py). The worker class also closes
# connections that stay silent, which gthread never does.
keepalive = _number("KYC_KEEPALIVE", 0, 0, 300)
backlog = 256
preload_app = False
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
errorlog = "-"
loglevel = _choice("KYC_LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical"))
accesslog = "-" if _choice("KYC_ACCESS_LOG", "0", ("0", "1")) == "1" else None
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'  # path only: no query strings
# Request limits at the HTTP layer, before Flask (Flask enforces the body size itself).
limit_request_line = 4096
limit_request_fields = 50

# Pinning runs each worker on a core of its own: a frame's work passes between a worker's
# threads (the request thread, the FaceMesh graph's threads, the decision pool), and pinned
# they hand off on one core. On the 2-core VM every pinned load run met the target (13 of 13),
# unpinned runs 6 of 10 (docs/measurements.md, "Load test"). By default (auto) only with one worker per core
# this process may use: with fewer workers, pinned ones would leave cores unused. The arbiter
# picks the least used core before each fork, so a replaced worker takes the core its
# predecessor left.
_pin = _choice("KYC_PIN_WORKERS", "auto", ("auto", "0", "1"))
if _pin == "1" and not hasattr(os, "sched_setaffinity"):
    raise SystemExit("gunicorn.conf.py: KYC_PIN_WORKERS must be 0 or auto on this platform (no sched_setaffinity)")
pin_workers = _pin == "1" or (_pin == "auto" and hasattr(os, "sched_setaffinity") and 1 < workers == _cores)


def pre_fork(server, worker):
    if pin_workers:
        used = [getattr(w, "cpu", None) for w in server.WORKERS.values()]
        worker.cpu = min(sorted(os.sched_getaffinity(0)), key=used.count)  # read now: a cpuset can change


def post_fork(server, worker):
    if pin_workers:  # before the worker starts any thread: every thread it starts inherits the core
        try:
            os.sched_setaffinity(0, {worker.cpu})
        except OSError as e:  # the core left the allowed set since the fork: serve, unpinned
            server.log.warning("worker %s not pinned to CPU %s: %s", worker.pid, worker.cpu, e)
            return
        server.log.info("worker %s runs on CPU %s", worker.pid, worker.cpu)


def on_starting(server):
    # The service's settings and prompt templates, checked once before any worker forks: a
    # bad one stops the start in one line (a worker that fails to boot prints a traceback and
    # gunicorn retries it). Nothing it opens outlives the check (no graph, no connection).
    from kyc_llm.web import create_app

    try:
        create_app().extensions["kyc"].close()
    except KycError as exc:
        raise SystemExit(f"error: {exc.message}")
