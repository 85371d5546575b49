"""gunicorn's settings for the service (read from the folder gunicorn starts in): README, "Production setup".

Synchronous workers, one request at a time each: a request is Python work (the engine, forms, JSON) between a
few short statements, so the throughput comes from processes, not threads (the GIL). Two per core keeps a core
busy while the other process of the pair waits on PostgreSQL.
"""
import multiprocessing
import os

workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
bind = os.environ.get("BIND", "0.0.0.0:8000")
worker_class = "sync"
timeout = 60  # above DATABASE_STATEMENT_TIMEOUT_SECONDS (30): a slow statement fails before its worker is killed
graceful_timeout = 30
max_requests = 10000  # recycle a worker now and then (memory), staggered so that they never all restart at once
max_requests_jitter = 1000
