"""authgate -> Flask-Login bridge: sign users in from authgate's identity headers.

Drop this file and ``authgate_verify.py`` next to each other in a Flask-Login
application (written against TimeTracker's ``app.models.User``) and call
``init_authgate`` once, after the LoginManager and the database are set up::

    import os
    from app import db
    from app.models import User
    from flask_login_recipe import init_authgate

    init_authgate(
        app,
        secret=os.environ["HEADER_SIGNING_SECRET"],   # the gateway's HEADER_SIGNING_SECRET
        user_loader_model=User,
        db=db,
        skip_paths=("/static/", "/_health", "/_ready"),  # mirror the gateway's SKIP_AUTH_PATHS
    )

What it does on every request (a ``before_request`` hook that runs before the
app's own hooks), except on ``skip_paths`` (plain prefix match, like the
gateway's ``SKIP_AUTH_PATHS``), where it does nothing at all:

* valid identity headers -> the user is looked up by username (normalised with
  ``normalize_username``; by default ``strip().lower()`` as TimeTracker stores
  usernames), created if unknown (``create_users``), updated (full name and
  email when the gateway sends them; admin synced both ways: granted when
  ``X-Admin: true``, revoked when ``false``) and signed in with Flask-Login
  (``remember=False``: the gateway owns the session lifetime). A different user
  already signed in is signed out first. ``flask.g.authgate_identity`` holds
  the verified ``Identity`` (groups included).
* no identity headers (the gateway session ended, or the request bypassed the
  gateway) -> any Flask-Login session is ended (``logout_user``, which also
  clears a remember-me cookie); then ``401 {"error": "unauthenticated"}`` when
  ``require_identity`` (default), or the request continues anonymously.
* invalid headers (bad signature, stale or future timestamp, repeated header,
  bad encoding...) -> session ended, ``401 {"error": "invalid_identity",
  "reason": "<code>"}`` and a warning in the app log.
* a user that the application disabled (``is_active`` false) -> ``403
  {"error": "account_disabled"}``; the recipe never re-enables accounts.

Admin mapping, in this order, whatever the model offers:
  a writable ``is_admin`` attribute/column is set to the header value;
  a string ``role`` column becomes ``admin_role`` ("admin") when admin, and
  ``default_role`` ("user") when not admin and it was one of ``admin_role_names``;
  a ``roles`` collection (TimeTracker's RBAC) loses roles named in
  ``admin_role_names`` when not admin.
TimeTracker's ``User.is_admin`` is a read-only property over ``role`` and
``roles``, so the last two rules are what apply there.

This module imports neither Flask nor Flask-Login at import time: importing it
works anywhere; ``init_authgate`` raises a RuntimeError naming what is missing.

Security notes: keep the upstream reachable only through authgate (bind it to
127.0.0.1 or a private network). authgate strips client-sent copies of the
identity headers (any case, ``_``/``.`` variants, repeats) before setting its
own; WSGI folds repeats into one comma-joined value, which the verifier rejects.
"""

from __future__ import annotations

import html
import logging
import os
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional, Sequence

try:  # used as a package module (from .flask_login_recipe import ...)
    from .authgate_verify import (  # type: ignore[import-not-found]
        REASON_NO_IDENTITY,
        AuthgateVerificationError,
        Identity,
        verify_identity_headers,
    )
except ImportError:  # used as a top-level module next to authgate_verify.py
    from authgate_verify import (  # type: ignore[no-redef]
        REASON_NO_IDENTITY,
        AuthgateVerificationError,
        Identity,
        verify_identity_headers,
    )

__all__ = ["init_authgate", "timetracker_username", "is_skip_path", "skip_paths_from_env"]

log = logging.getLogger("authgate")

DEFAULT_SKIP_PATHS = ("/static/", "/_health", "/_ready")


def skip_paths_from_env(default: Iterable[str] = DEFAULT_SKIP_PATHS, environ: Optional[Any] = None) -> tuple:
    """The gateway's own ``SKIP_AUTH_PATHS`` (comma-separated), so both sides read one list.

    Unset: ``default``. Set to empty: nothing is skipped (the gateway's rule for an empty list).
    """
    value = (os.environ if environ is None else environ).get("SKIP_AUTH_PATHS")
    if value is None:
        return tuple(default)
    return tuple(p.strip() for p in value.split(",") if p.strip())


def is_skip_path(path: str, prefixes: Sequence[str]) -> bool:
    """The gateway's SKIP_AUTH_PATHS rule: ``/static/`` matches below it; ``/_health`` matches
    itself and below ``/_health/`` (never ``/_healthz``)."""
    for prefix in prefixes:
        if prefix.endswith("/"):
            if path.startswith(prefix):
                return True
        elif path == prefix or path.startswith(prefix + "/"):
            return True
    return False


# Page navigations get a page (with a way out) rather than JSON; why each refusal happened.
_PAGES = {
    "unauthenticated": (
        "Not signed in",
        "This application is reached through its sign-in gateway, and this request did not come "
        "through it.",
    ),
    "invalid_identity": (
        "Sign-in could not be verified",
        "The identity sent with this request could not be verified. Reload the page; if this "
        "persists, sign out and sign in again.",
    ),
    "account_disabled": (
        "Account disabled",
        "Your account is disabled in this application. Ask an administrator to enable it, or sign "
        "out and sign in as someone else.",
    ),
    "unknown_user": (
        "No account here",
        "You are signed in, but this application has no account for you. Ask an administrator, or "
        "sign out and sign in as someone else.",
    ),
}


def _error_page(code: str, logout_url: str) -> str:
    title, text = _PAGES[code]
    sign_out = (
        f'<p><a href="{html.escape(logout_url)}">Sign out</a></p>' if code != "unauthenticated" else ""
    )
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
        "color:#1f2937}a{color:#2563eb}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{sign_out}</body></html>"
    )


def timetracker_username(username: str) -> str:
    """TimeTracker lower-cases and strips usernames (``User.__init__`` and its login form)."""
    return username.strip().lower()


def _utcnow_naive() -> datetime:
    # TimeTracker's DateTime columns are naive UTC (datetime.utcnow()).
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _default_create_user(model: Any, username: str, identity: Identity) -> Any:
    try:
        return model(username=username)  # TimeTracker: User(username, role="user", email=None, full_name=None)
    except TypeError:
        user = model()
        user.username = username
        return user


def _is_writable_attribute(obj: Any, name: str) -> bool:
    if not hasattr(obj, name):
        return False
    cls_attr = getattr(type(obj), name, None)
    # A read-only @property (TimeTracker's User.is_admin) cannot be set.
    return not (isinstance(cls_attr, property) and cls_attr.fset is None)


def _sync_admin(
    user: Any,
    is_admin: bool,
    *,
    admin_role: str,
    default_role: str,
    admin_role_names: Sequence[str],
) -> bool:
    changed = False
    if _is_writable_attribute(user, "is_admin"):
        if bool(getattr(user, "is_admin")) != is_admin:
            setattr(user, "is_admin", is_admin)
            changed = True
    role = getattr(user, "role", None) if hasattr(user, "role") else None
    if hasattr(user, "role") and (role is None or isinstance(role, str)):
        if is_admin and role != admin_role:
            user.role = admin_role
            changed = True
        elif not is_admin and role in admin_role_names:
            user.role = default_role
            changed = True
    if not is_admin:
        roles = getattr(user, "roles", None)
        if roles is not None and not isinstance(roles, (str, bytes)) and hasattr(roles, "remove"):
            for r in list(roles):
                if getattr(r, "name", None) in admin_role_names:
                    roles.remove(r)
                    changed = True
    return changed


def _sync_profile(user: Any, identity: Identity) -> bool:
    # Only overwrite when the gateway knows a value: an empty X-Email or
    # X-Full-Name keeps what the user set in the application.
    changed = False
    for attr, value in (("full_name", identity.full_name), ("email", identity.email)):
        if value and hasattr(user, attr) and getattr(user, attr) != value:
            setattr(user, attr, value)
            changed = True
    return changed


def init_authgate(
    app: Any,
    *,
    secret: Any,
    user_loader_model: Any,
    db: Any,
    skip_paths: Optional[Iterable[str]] = None,
    max_skew: int = 60,
    require_identity: bool = True,
    create_users: bool = True,
    normalize_username: Optional[Callable[[str], str]] = timetracker_username,
    create_user: Callable[[Any, str, Identity], Any] = _default_create_user,
    admin_role: str = "admin",
    default_role: str = "user",
    admin_role_names: Sequence[str] = ("admin", "super_admin"),
    on_login: Optional[Callable[[Any, Identity], None]] = None,
    logout_url: str = "/logout",
) -> Callable[[], Any]:
    """Install the authgate ``before_request`` hook on ``app`` and return it.

    ``secret``: the gateway's HEADER_SIGNING_SECRET (str or bytes).
    ``user_loader_model``: the SQLAlchemy model Flask-Login's user_loader returns.
    ``db``: the Flask-SQLAlchemy object (``db.session`` is used).
    ``skip_paths``: path prefixes left alone (no verification, no sign-in/out); None reads the
    gateway's ``SKIP_AUTH_PATHS`` from the environment (see ``skip_paths_from_env``).
    ``require_identity``: answer 401 when a protected path arrives without headers.
    ``create_users``: create unknown users (else 403 ``unknown_user``).
    ``normalize_username``: applied to X-User before lookup/creation (None: as sent).
    ``create_user(model, username, identity)``: builds a new, unsaved user.
    ``on_login(user, identity)``: called after a (re-)sign-in, before the view runs.
    ``logout_url``: the gateway's sign-out, linked from the refusal pages.
    """
    try:
        from flask import g, jsonify, make_response, request
        from flask_login import current_user, login_user, logout_user
    except ImportError as err:  # degrade with a clear message instead of an import-time crash
        raise RuntimeError(
            "init_authgate needs Flask and Flask-Login (pip install flask flask-login, "
            f"or Debian's python3-flask python3-flask-login): {err}"
        ) from err

    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        raise ValueError("init_authgate: secret (HEADER_SIGNING_SECRET) is empty")
    if len(secret) < 32:
        log.warning("authgate: HEADER_SIGNING_SECRET is shorter than 32 bytes; the gateway refuses such secrets")
    if getattr(app, "login_manager", None) is None:
        raise RuntimeError("init_authgate: set up flask_login.LoginManager on the app first")

    skip = skip_paths_from_env() if skip_paths is None else tuple(skip_paths)
    normalize = normalize_username or (lambda s: s)
    try:
        from sqlalchemy.exc import IntegrityError  # Flask-SQLAlchemy brings SQLAlchemy
    except ImportError:  # pragma: no cover - any other ORM: no duplicate-insert retry
        IntegrityError = ()  # type: ignore[assignment,misc]

    def error(status: int, code: str, **extra: Any) -> Any:
        accept = request.accept_mimetypes
        if request.method in ("GET", "HEAD") and accept.accept_html and accept.quality("text/html") > accept.quality("application/json"):
            response = make_response(_error_page(code, logout_url), status)
            response.headers["Content-Type"] = "text/html; charset=utf-8"
        else:
            response = jsonify(error=code, **extra)
            response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response

    def end_session() -> None:
        if current_user.is_authenticated:
            log.info("authgate: signing out %r (no valid identity headers)", current_user.get_id())
            logout_user()

    def find_user(username: str) -> Any:
        return db.session.query(user_loader_model).filter_by(username=username).first()

    def upsert(identity: Identity) -> Any:
        username = normalize(identity.username)
        user = find_user(username)
        created = False
        if user is None:
            if not create_users:
                return None
            user = create_user(user_loader_model, username, identity)
            db.session.add(user)
            created = True
        changed = _sync_profile(user, identity)
        changed = (
            _sync_admin(
                user,
                identity.is_admin,
                admin_role=admin_role,
                default_role=default_role,
                admin_role_names=admin_role_names,
            )
            or changed
        )
        if created or changed:
            try:
                db.session.commit()
            except IntegrityError:
                # Another request created the same user concurrently: use that one.
                db.session.rollback()
                user = find_user(username)
                if user is None:
                    raise
                if _sync_profile(user, identity) | _sync_admin(
                    user,
                    identity.is_admin,
                    admin_role=admin_role,
                    default_role=default_role,
                    admin_role_names=admin_role_names,
                ):
                    db.session.commit()
            except Exception:
                db.session.rollback()
                raise
        if bool(getattr(user, "is_admin", identity.is_admin)) != identity.is_admin:
            log.warning(
                "authgate: could not make %r's admin flag %s (model has no writable is_admin/role/roles)",
                username,
                identity.is_admin,
            )
        return user

    def authgate_before_request() -> Any:
        g.authgate_identity = None
        path = request.path or "/"
        if is_skip_path(path, skip):
            return None
        try:
            identity = verify_identity_headers(request.headers, secret, max_skew=max_skew)
        except AuthgateVerificationError as err:
            end_session()
            if err.reason == REASON_NO_IDENTITY:
                return error(401, "unauthenticated") if require_identity else None
            app.logger.warning(
                "authgate: rejected identity headers on %s %s: %s", request.method, path, err
            )
            return error(401, "invalid_identity", reason=err.reason)

        user = upsert(identity)
        if user is None:
            end_session()
            return error(403, "unknown_user")
        if not getattr(user, "is_active", True):
            end_session()
            return error(403, "account_disabled")

        if not (current_user.is_authenticated and str(current_user.get_id()) == str(user.get_id())):
            end_session()  # a different user was signed in in this browser
            login_user(user, remember=False, fresh=True)
            if hasattr(user, "last_login"):
                user.last_login = _utcnow_naive()
                try:
                    db.session.commit()
                except Exception:
                    db.session.rollback()
                    raise
            if on_login is not None:
                on_login(user, identity)
        g.authgate_identity = identity
        return None

    def authgate_admin_is_the_gateways() -> None:
        # The gateway is the only source of admin rights: an application hook that promoted the
        # user on its own (TimeTracker's ADMIN_USERNAMES does, on every request) is undone before
        # the view runs, so a demotion holds from the next request on.
        identity = g.get("authgate_identity")
        if identity is None or not current_user.is_authenticated:
            return None
        if bool(getattr(current_user, "is_admin", identity.is_admin)) == identity.is_admin:
            return None
        log.warning(
            "authgate: another before_request hook changed %r's admin rights; X-Admin (%s) wins",
            current_user.get_id(),
            identity.is_admin,
        )
        user = current_user._get_current_object()
        if _sync_admin(user, identity.is_admin, admin_role=admin_role, default_role=default_role, admin_role_names=admin_role_names):
            try:
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
        return None

    # Run before every other before_request hook (CSRF, setup wizards...), so
    # they all see the user the gateway authenticated; and the admin check after them all.
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks.insert(0, authgate_before_request)
    hooks.append(authgate_admin_is_the_gateways)
    return authgate_before_request
