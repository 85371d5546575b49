"""The service as a WSGI application with its timers running (``flask --app service.wsgi run``)."""
from service import create_app, scheduler, settle_process

app = create_app()
scheduler.start(app)
settle_process()
