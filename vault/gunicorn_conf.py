"""gunicorn settings for production; every value can be set from the environment."""

import os

bind = os.environ.get("HAVEN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("HAVEN_THREADS", "8"))
timeout = int(os.environ.get("HAVEN_WORKER_TIMEOUT", "120"))
graceful_timeout = 30
worker_tmp_dir = os.environ.get("HAVEN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 - RAM, not disk
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
# Path only: query strings and bodies never reach the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
