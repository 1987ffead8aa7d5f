"""gunicorn settings for production; every value can be set from the environment."""

import os

bind = os.environ.get("HAVEN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread with header and body read deadlines (vault/deadlines.py, docs/deploy.md).
worker_class = "vault.deadlines.HavenWorker"
threads = int(os.environ.get("HAVEN_THREADS", "8"))
timeout = int(os.environ.get("HAVEN_WORKER_TIMEOUT", "120"))
# Idle keep-alive connections (and connections that sent nothing yet) wait in the worker's
# poller, not in a thread, and are closed after this many seconds.
keepalive = int(os.environ.get("HAVEN_KEEPALIVE_SECONDS", "5"))
graceful_timeout = 30
worker_tmp_dir = os.environ.get("HAVEN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 - RAM, not disk
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
# Path only: query strings and bodies never reach the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
# Intake requests are logged without the address (vault/accesslog.py, protocol §20.7).
logger_class = "vault.accesslog.HavenLogger"
errorlog = "-"
