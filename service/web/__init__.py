"""The web pages for case workers and managers: GOV.UK Design System markup, rendered on the server.

Every page calls the same service layer as the REST API (``service.cases``, ``service.auth``); nothing
here decides who may do what. ``init_app`` wires in:

* Flask-Login (a signed session cookie holding the user's id and session version, refused once the user's
  sessions are ended, idle or too old: ``service.auth.session_holds``; sign-in through
  ``service.auth.sign_in``: argon2, a lock per user name and address, rate limits; docs/security.md);
* Flask-WTF's ``CSRFProtect`` on every form post, with the ``/api/v1`` and ``/engine-rest`` blueprints exempt
  (they use bearer tokens or the Modeler's credentials, not cookies);
* security headers on every response (a strict content security policy: no inline script or style);
* a session cookie marked ``Secure`` when the request came over HTTPS (or ``SESSION_COOKIE_SECURE`` is set);
* Jinja loading the ``govuk-frontend-jinja`` macros as ``govuk_frontend_jinja/...``.
"""
from __future__ import annotations

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from jinja2 import ChoiceLoader, PackageLoader, PrefixLoader

from service.web import case_pages, cases_pages, filters  # noqa: F401  (their routes join the blueprint)
from service.web.views import WebUser, bp
from service.web import manager_pages  # noqa: F401  (its routes are on bp: the workload, notes, documents)
from service.web import analyst_pages  # noqa: F401  (its routes are on bp: the analyst workspace)
from service.web import rehearsal_pages  # noqa: F401  (its routes are on bp: rehearsals, issue 17 item 5)
from service.web import approval_pages  # noqa: F401  (its routes are on bp: drafts and approval, issue 17 item 4)

#: Where each request carries its own credentials (a bearer token; Camunda Modeler's deploy), so that a cookie
#: can never act for it: no CSRF token is asked for.
TOKEN_PREFIXES = ("/api/", "/engine-rest/")

#: bpmn-js sets element styles through the CSSOM (allowed by style-src 'self'); its bundled font and
#: the bpmn.io watermark logo are data: URIs, hence font-src and img-src allow data:.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` when configured so, and whenever the request itself is HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app) or (has_request_context() and request.is_secure))


def init_app(app: Flask) -> None:
    app.jinja_loader = ChoiceLoader([
        app.jinja_loader,
        PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
    ])
    filters.register(app)
    app.session_interface = _SessionInterface()

    # One of each per app (``app.extensions``, ``app.login_manager``), not module globals: a module's CSRFProtect
    # would keep every app it had exempted blueprints for alive, and each app its parsed pathways.
    login_manager = LoginManager(app)
    login_manager.login_view = "web.sign_in"
    login_manager.login_message = "Sign in to see that page"
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(WebUser.load)

    app.register_blueprint(bp)
    _exempt_token_routes(app, CSRFProtect(app))

    @app.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.blueprint == bp.name:  # pages show case data: never keep them in a shared cache
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _exempt_token_routes(app: Flask, csrf: CSRFProtect) -> None:
    """The REST API authenticates each request with a bearer token (and /engine-rest with the Modeler's
    credentials), so a cookie can never act for it."""
    names = {rule.endpoint.rsplit(".", 1)[0] for rule in app.url_map.iter_rules()
             if rule.rule.startswith(TOKEN_PREFIXES) and "." in rule.endpoint}
    for name in names:
        csrf.exempt(app.blueprints[name])
