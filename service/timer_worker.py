"""The service for a timer worker process: ``flask --app service.timer_worker timers run``.

It fires timers and sends the outbox as any service process does, without the pages, the API and the database
migrations (``create_app(timers_only=True)``), whose modules it never imports: less memory. The web processes
then run with ``TIMERS_ENABLED=false``.
"""
from service import create_app, settle_process

app = create_app(timers_only=True)
settle_process()
