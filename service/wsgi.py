"""The service as a WSGI application with its timers running (``flask --app service.wsgi run``)."""
from service import create_app, scheduler, settle_process

app = create_app()
settle_process()  # before the timers' threads start: nothing of a first sweep is frozen with the app
scheduler.start(app)
