#!/usr/bin/env python3
"""A minimal Flask upstream that trusts nothing but authgate's signed identity headers.

Needs Flask only (no Flask-Login, no database): users live in an in-memory dict
and the "signed-in" state in Flask's cookie session, to show the two things an
upstream must do: verify the headers on every request, and drop its own session
as soon as the headers stop coming.

Run (binds 127.0.0.1; never expose an upstream directly)::

    HEADER_SIGNING_SECRET=... python3 demo_app.py --port 5000 --secret-env HEADER_SIGNING_SECRET

then point authgate at it (UPSTREAM_URL=http://127.0.0.1:5000). ``--port 0``
picks a free port. Once it accepts connections it prints one line on stdout::

    demo_app listening on http://127.0.0.1:<port>

Exit status 3 (with a message on stderr) means this interpreter has no Flask:
on Debian try ``/usr/bin/python3`` after ``apt-get install python3-flask``, or
``pip install flask`` for the interpreter you use.

Routes:
    GET /whoami   200 {"username", "is_admin", "email", "full_name", "groups"}
                  401 {"error": "<reason>"}  (no_identity, bad_signature, stale_timestamp...)
    GET /public   200 {"public": true, "username": <verified user or null>}
    GET /headers  200 {"headers": [[name, value], ...]} what reached the app (diagnostics)
    GET /users    200 {"users": {...}} the in-memory user table (verified requests only)
    GET /healthz  200 {"status": "ok"}
Any request with identity headers that fail verification gets 401
{"error": "<reason>"} whatever the path, and ends the demo session.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
from typing import Any, Optional

from authgate_verify import (
    DEFAULT_MAX_SKEW,
    REASON_NO_IDENTITY,
    AuthgateVerificationError,
    verify_identity_headers,
)

EXIT_NO_FLASK = 3


def create_app(secret: Any, *, max_skew: int = DEFAULT_MAX_SKEW) -> Any:
    from flask import Flask, g, jsonify, request, session

    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        raise ValueError("empty header signing secret")

    app = Flask("authgate_demo_app")
    # The demo's own session cookie: a fresh key per process is enough here.
    app.secret_key = secrets.token_bytes(32)
    app.config.update(
        SESSION_COOKIE_NAME="demo_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if hasattr(app, "json") and hasattr(app.json, "sort_keys"):  # Flask >= 2.2
        app.json.sort_keys = False  # keep the documented field order
    else:  # pragma: no cover - older Flask
        app.config["JSON_SORT_KEYS"] = False

    users: dict = {}  # username -> {"email", "full_name", "is_admin", "groups", "logins"}
    users_lock = threading.Lock()
    public_paths = ("/public", "/healthz", "/headers")

    @app.before_request
    def verify_authgate_identity() -> Optional[Any]:
        g.identity = None
        g.authgate_error = None
        try:
            ident = verify_identity_headers(request.headers, secret, max_skew=max_skew)
        except AuthgateVerificationError as err:
            # Headers gone (gateway session ended) or invalid: end our session too.
            session.pop("username", None)
            g.authgate_error = err.reason
            if err.reason == REASON_NO_IDENTITY:
                return None  # anonymous; each route decides
            app.logger.warning("rejected identity headers on %s: %s", request.path, err)
            return jsonify(error=err.reason), 401

        with users_lock:
            record = users.setdefault(ident.username, {"logins": 0})
            # Profile and admin flag follow the gateway on every request.
            record.update(
                email=ident.email,
                full_name=ident.full_name,
                is_admin=ident.is_admin,
                groups=list(ident.groups),
            )
            if session.get("username") != ident.username:
                session.clear()  # another user was signed in: never mix sessions
                session["username"] = ident.username
                record["logins"] += 1
        g.identity = ident
        return None

    @app.get("/whoami")
    def whoami() -> Any:
        ident = g.identity
        if ident is None:
            return jsonify(error=g.authgate_error or REASON_NO_IDENTITY), 401
        return jsonify(
            username=ident.username,
            is_admin=ident.is_admin,
            email=ident.email,
            full_name=ident.full_name,
            groups=list(ident.groups),
        )

    @app.get("/public")
    def public() -> Any:
        return jsonify(public=True, username=g.identity.username if g.identity else None)

    @app.get("/headers")
    def headers() -> Any:
        return jsonify(headers=[[k, v] for k, v in request.headers.items()])

    @app.get("/users")
    def list_users() -> Any:
        if g.identity is None:
            return jsonify(error=g.authgate_error or REASON_NO_IDENTITY), 401
        with users_lock:
            return jsonify(users={k: dict(v) for k, v in users.items()})

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.after_request
    def no_store(response: Any) -> Any:
        if request.path not in public_paths:
            response.headers["Cache-Control"] = "no-store"
        return response

    return app


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="authgate demo upstream (Flask)")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--secret-env", metavar="NAME", default=None)
    source.add_argument("--secret-file", metavar="PATH", default=None)
    parser.add_argument("--max-skew", type=int, default=DEFAULT_MAX_SKEW)
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    args = parser.parse_args(argv)

    try:
        import flask  # noqa: F401
        from werkzeug.serving import make_server
    except ImportError:
        sys.stderr.write(
            f"demo_app.py needs Flask, which {sys.executable} does not have. "
            "Use an interpreter that has it (on Debian: apt-get install python3-flask, "
            "then /usr/bin/python3 demo_app.py ...), or pip install flask.\n"
        )
        return EXIT_NO_FLASK

    if args.secret_file:
        with open(args.secret_file, "r", encoding="utf-8") as fh:
            secret = fh.read().rstrip("\r\n")
    else:
        name = args.secret_env or "HEADER_SIGNING_SECRET"
        secret = os.environ.get(name, "")
        if not secret:
            sys.stderr.write(f"environment variable {name} is unset or empty\n")
            return 2
    if not secret:
        sys.stderr.write("empty header signing secret\n")
        return 2

    if args.quiet:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    app = create_app(secret, max_skew=args.max_skew)
    server = make_server(args.host, args.port, app, threaded=True)
    host = args.host if ":" not in args.host else f"[{args.host}]"
    print(f"demo_app listening on http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
