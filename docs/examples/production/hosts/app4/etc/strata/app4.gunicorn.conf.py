# Gunicorn for Strata: app server app4 of the pool.
# Rendered by `strata up` / `strata config`; edit the template, not this file.
bind = "10.0.3.4:8000"
workers = 4
worker_class = "sync"
# Load Django once in the master and fork: faster worker (re)starts, shared memory pages.
preload_app = True
# A worker stuck longer than this is killed and replaced (a hung request is not waited on forever).
timeout = 30
graceful_timeout = 10
keepalive = 5
# HAProxy sends at most `workers` requests at a time (maxconn); the rest queue there.
backlog = 256
proc_name = "strata-app4"
# Gunicorn 27 opens a control socket in ~/.gunicorn, shared by every instance of the
# user; none is needed under systemd (older versions ignore this unknown setting).
control_socket_disable = True
chdir = "/srv/newsroom/demo"
wsgi_app = "strata.stack.wsgi:application"
accesslog = None
errorlog = "-"
loglevel = "warning"


def post_fork(server, worker):
    # Objects created while importing Django are long-lived: keep them out of the
    # collector's way so that forked workers do not copy them on write.
    import gc

    gc.freeze()


def child_exit(server, worker):
    # prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR): a dead worker's
    # gauges leave the sums that /-/metrics serves.
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
