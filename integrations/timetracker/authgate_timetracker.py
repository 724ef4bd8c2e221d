"""TimeTracker behind authgate: its app factory, with the gateway as the only way in.

Serve this module's ``create_app`` instead of TimeTracker's own (nothing in the TimeTracker
checkout or image is edited)::

    PYTHONPATH=/opt/authgate/timetracker:/opt/authgate/flask:/app \\
    HEADER_SIGNING_SECRET=...  SKIP_AUTH_PATHS=/api/v1/,/static/,/_health,/_ready \\
    gunicorn --worker-class eventlet --workers 1 --bind 127.0.0.1:5000 'authgate_timetracker:create_app()'

where ``/opt/authgate/timetracker`` holds this file, ``/opt/authgate/flask`` holds
``authgate_verify.py`` and ``flask_login_recipe.py``, and ``/app`` is TimeTracker. TimeTracker's
own commands (``flask init-db``, ``flask db upgrade``, its image's start scripts) keep using
``FLASK_APP=app`` and need none of this.

What it adds to TimeTracker, each for a reason found running it behind the gateway:

* every HTTP request signs the Flask-Login user in and out from the signed identity headers
  (``flask_login_recipe.init_authgate``); a TimeTracker session cookie is worth nothing without
  them;
* **Socket.IO** (which never runs ``before_request``): every ``/socket.io/`` request must carry a
  valid signed identity, and the Socket.IO connection is refused unless that identity is the user
  the TimeTracker session belongs to. Timer events, which TimeTracker broadcasts to every
  connected client, reach only the user they are about;
* **admin rights come from the gateway only**: TimeTracker's ``ADMIN_USERNAMES`` hook, which
  re-promotes those users on every request, is removed (and the recipe undoes any other
  promotion before the view runs);
* the skip list is the gateway's own ``SKIP_AUTH_PATHS`` (the TimeTracker preset when unset);
* ``X-Forwarded-Host`` / ``X-Forwarded-Proto`` from the gateway make TimeTracker's absolute URLs
  public ones (ProxyFix; TimeTracker applies it itself from this version on, older ones get it here).

Environment: ``HEADER_SIGNING_SECRET`` (or ``HEADER_SIGNING_SECRET_FILE``) — the gateway's value,
at least 32 bytes; ``SKIP_AUTH_PATHS`` — the gateway's value.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Mapping, Optional

from authgate_verify import AuthgateVerificationError, verify_identity_headers
from flask_login_recipe import init_authgate, skip_paths_from_env, timetracker_username

__all__ = [
    "AuthgateSetupError",
    "TIMETRACKER_SKIP_AUTH_PATHS",
    "create_app",
    "protect_timetracker",
    "read_signing_secret",
]

log = logging.getLogger("authgate")

# Requests TimeTracker answers without a gateway session: its API (token clients, in versions that
# have /api/v1/), static files and health checks. The gateway's SKIP_AUTH_PATHS must say the same.
TIMETRACKER_SKIP_AUTH_PATHS = ("/api/v1/", "/static/", "/_health", "/_ready")

# TimeTracker's before_request hook that makes ADMIN_USERNAMES administrators on every request.
_PROMOTION_HOOKS = ("_promote_admin_users_on_request",)

# Events TimeTracker emits to everyone, each about one user (its payload's user_id).
_PER_USER_EVENTS = ("timer_started", "timer_stopped")


class AuthgateSetupError(RuntimeError):
    """The integration cannot start: the message says what to set."""


def read_signing_secret(environ: Mapping[str, str]) -> bytes:
    """HEADER_SIGNING_SECRET, or the file HEADER_SIGNING_SECRET_FILE names (one newline stripped)."""
    value = environ.get("HEADER_SIGNING_SECRET", "")
    path = environ.get("HEADER_SIGNING_SECRET_FILE", "")
    if value and path:
        raise AuthgateSetupError("set HEADER_SIGNING_SECRET or HEADER_SIGNING_SECRET_FILE, not both")
    if path:
        try:
            with open(path, "rb") as fh:
                secret = fh.read()
        except OSError as err:
            raise AuthgateSetupError(f"HEADER_SIGNING_SECRET_FILE: cannot read {path}: {err.strerror}") from None
        secret = secret[:-1] if secret.endswith(b"\n") else secret
        secret = secret[:-1] if secret.endswith(b"\r") else secret
    else:
        secret = value.encode("utf-8")
    if not secret:
        raise AuthgateSetupError(
            "HEADER_SIGNING_SECRET is not set: give TimeTracker the gateway's HEADER_SIGNING_SECRET "
            "(or HEADER_SIGNING_SECRET_FILE) so it can verify who the gateway signed in"
        )
    if len(secret) < 32:
        raise AuthgateSetupError("HEADER_SIGNING_SECRET is shorter than 32 bytes: the gateway refuses it, so no request could verify")
    return secret


def protect_timetracker(app: Any, *, secret: bytes, db: Any, socketio: Any, user_model: Any, skip_paths: tuple) -> None:
    """Apply everything above to a TimeTracker app that ``create_app`` has built."""
    _ensure_proxy_fix(app)
    removed = _remove_promotion_hooks(app)
    init_authgate(app, secret=secret, user_loader_model=user_model, db=db, skip_paths=skip_paths)
    _guard_socketio(app, socketio, secret=secret)
    app.logger.info(
        "authgate: TimeTracker protected (skip paths %s; %s)",
        ",".join(skip_paths) or "none",
        "ADMIN_USERNAMES promotion removed" if removed else "no ADMIN_USERNAMES promotion hook found",
    )


def create_app(config: Optional[dict] = None) -> Any:
    """TimeTracker's ``app.create_app``, protected. gunicorn: ``'authgate_timetracker:create_app()'``."""
    try:
        secret = read_signing_secret(os.environ)
    except AuthgateSetupError as err:
        # One clear line where gunicorn's traceback would bury it.
        sys.stderr.write(f"authgate_timetracker: cannot start: {err}\n")
        raise
    from app import create_app as timetracker_create_app, db, socketio
    from app.models import User

    app = timetracker_create_app(config)
    protect_timetracker(
        app,
        secret=secret,
        db=db,
        socketio=socketio,
        user_model=User,
        skip_paths=skip_paths_from_env(TIMETRACKER_SKIP_AUTH_PATHS),
    )
    return app


def _ensure_proxy_fix(app: Any) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    layer = app.wsgi_app
    while layer is not None:
        if isinstance(layer, ProxyFix):
            return
        layer = getattr(layer, "wsgi_app", None) or getattr(layer, "app", None)
    # One proxy (the gateway) in front: believe its X-Forwarded-For/-Proto/-Host, nothing more.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)


def _remove_promotion_hooks(app: Any) -> bool:
    hooks = app.before_request_funcs.get(None, [])
    kept = [h for h in hooks if getattr(h, "__name__", "") not in _PROMOTION_HOOKS]
    removed = len(kept) != len(hooks)
    hooks[:] = kept
    return removed


def _refusal(start_response: Any, reason: str) -> list:
    body = ('{"error": "invalid_identity", "reason": "%s"}' % reason).encode("ascii")
    start_response(
        "401 Unauthorized",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
    )
    return [body]


def _guard_socketio(app: Any, socketio: Any, *, secret: bytes) -> None:
    from flask import request
    from flask_login import current_user
    from flask_socketio import join_room
    from socketio.exceptions import ConnectionRefusedError

    path = "/" + str(getattr(socketio, "server_options", {}).get("path", "socket.io")).strip("/") + "/"
    inner = app.wsgi_app

    def socketio_needs_identity(environ: dict, start_response: Any) -> Any:
        # Every Socket.IO transport request (the handshake, each long-poll, the WebSocket upgrade)
        # carries the gateway's signature: without it, nothing reaches Engine.IO at all.
        if environ.get("PATH_INFO", "").startswith(path):
            headers = [(k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")]
            try:
                verify_identity_headers(headers, secret)
            except AuthgateVerificationError as err:
                return _refusal(start_response, err.reason)
        return inner(environ, start_response)

    app.wsgi_app = socketio_needs_identity

    handlers = socketio.server.handlers.get("/", {}) if socketio.server is not None else {}
    registered = handlers.get("connect")
    timetracker_connect = getattr(registered, "__wrapped__", registered)

    def authgate_connect(auth: Any = None) -> Any:
        # The connection belongs to the TimeTracker session's user; the gateway must have signed
        # that same user into this handshake (a stolen session cookie with someone else's gateway
        # session, or with none, gets nothing).
        try:
            identity = verify_identity_headers(request.headers, secret)
        except AuthgateVerificationError as err:
            raise ConnectionRefusedError("unauthorized: " + err.reason) from None
        if not current_user.is_authenticated or not getattr(current_user, "is_active", True):
            raise ConnectionRefusedError("unauthorized: no signed-in user")
        if current_user.username != timetracker_username(identity.username):
            raise ConnectionRefusedError("unauthorized: the session is another user's")
        join_room(_user_room(current_user.id))
        if timetracker_connect is None:
            return None
        try:
            return timetracker_connect(auth)
        except TypeError:
            return timetracker_connect()

    socketio.on("connect")(authgate_connect)

    broadcast = socketio.emit

    def emit_to_its_user(event: str, *args: Any, **kwargs: Any) -> Any:
        # TimeTracker broadcasts every user's timer events to every client; send each to its user.
        data = args[0] if args else None
        no_target = not any(kwargs.get(k) for k in ("to", "room"))
        if event in _PER_USER_EVENTS and no_target and isinstance(data, dict) and data.get("user_id") is not None:
            kwargs["to"] = _user_room(data["user_id"])
        return broadcast(event, *args, **kwargs)

    socketio.emit = emit_to_its_user


def _user_room(user_id: Any) -> str:
    return f"authgate-user-{user_id}"
