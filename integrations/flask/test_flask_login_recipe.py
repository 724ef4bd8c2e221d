"""Tests of flask_login_recipe.init_authgate against a TimeTracker-like User model.

Skipped unless Flask, Flask-Login and Flask-SQLAlchemy are importable (Debian:
apt-get install python3-flask python3-flask-login python3-flask-sqlalchemy,
then run with /usr/bin/python3 -m unittest -v from this directory).
"""

from __future__ import annotations

import importlib.util
import time
import unittest

from authgate_verify import sign_identity_headers

HAVE_DEPS = all(importlib.util.find_spec(m) is not None for m in ("flask", "flask_login", "flask_sqlalchemy"))
SECRET = "s" * 32  # TEST VECTOR ONLY


def headers_for(username="alice", **kw):
    kw.setdefault("timestamp", int(time.time()))
    return sign_identity_headers(SECRET, username, **kw)


def make_app(**init_kwargs):
    """A small app shaped like TimeTracker: role column, RBAC roles, read-only is_admin."""
    from flask import Flask, jsonify
    from flask_login import LoginManager, UserMixin, current_user, login_required
    from flask_sqlalchemy import SQLAlchemy

    from flask_login_recipe import init_authgate

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test-only-flask-secret",  # TEST ONLY
        SQLALCHEMY_DATABASE_URI="sqlite://",
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        TESTING=True,
    )
    db = SQLAlchemy(app)

    user_roles = db.Table(
        "user_roles",
        db.Column("user_id", db.Integer, db.ForeignKey("users.id"), primary_key=True),
        db.Column("role_id", db.Integer, db.ForeignKey("roles.id"), primary_key=True),
    )

    class Role(db.Model):
        __tablename__ = "roles"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50), unique=True, nullable=False)

    class User(UserMixin, db.Model):
        __tablename__ = "users"
        id = db.Column(db.Integer, primary_key=True)
        username = db.Column(db.String(80), unique=True, nullable=False)
        email = db.Column(db.String(200))
        full_name = db.Column(db.String(200))
        role = db.Column(db.String(20), default="user", nullable=False)
        last_login = db.Column(db.DateTime)
        is_active = db.Column(db.Boolean, default=True, nullable=False)
        roles = db.relationship("Role", secondary=user_roles, lazy="joined")

        def __init__(self, username, role="user", email=None, full_name=None):
            self.username = username.lower().strip()
            self.role = role
            self.email = email or None
            self.full_name = full_name or None

        @property
        def is_admin(self):
            if self.role == "admin":
                return True
            return any(r.name in ("admin", "super_admin") for r in self.roles)

    login_manager = LoginManager(app)

    @login_manager.user_loader
    def load_user(user_id):
        return db.session.get(User, int(user_id))

    @app.get("/me")
    @login_required
    def me():
        return jsonify(
            username=current_user.username,
            is_admin=current_user.is_admin,
            email=current_user.email,
            full_name=current_user.full_name,
        )

    @app.get("/static/x.css")
    def static_asset():
        return "body{}"

    with app.app_context():
        db.create_all()
    hook = init_authgate(app, secret=SECRET, user_loader_model=User, db=db, **init_kwargs)
    return app, db, User, Role, hook


@unittest.skipUnless(HAVE_DEPS, "Flask, Flask-Login or Flask-SQLAlchemy missing for this interpreter")
class RecipeTests(unittest.TestCase):
    def setUp(self):
        self.app, self.db, self.User, self.Role, self.hook = make_app()
        self.client = self.app.test_client()

    def user(self, username):
        with self.app.app_context():
            u = self.db.session.query(self.User).filter_by(username=username).first()
            if u is None:
                return None
            return dict(
                username=u.username,
                role=u.role,
                is_admin=u.is_admin,
                email=u.email,
                full_name=u.full_name,
                last_login=u.last_login,
                roles=[r.name for r in u.roles],
            )

    def test_hook_runs_first(self):
        self.assertIs(self.app.before_request_funcs[None][0], self.hook)

    def test_creates_and_signs_in(self):
        h = headers_for("Alice", email="alice@example.com", full_name="Alice Ä. Smith")
        r = self.client.get("/me", headers=h)
        self.assertEqual(r.status_code, 200, r.data)
        self.assertEqual(
            r.get_json(),
            {"username": "alice", "is_admin": False, "email": "alice@example.com", "full_name": "Alice Ä. Smith"},
        )
        u = self.user("alice")
        self.assertIsNotNone(u["last_login"])
        with self.client.session_transaction() as sess:
            self.assertIn("_user_id", sess)
            self.assertNotIn("_remember", sess)  # no remember-me cookie: the gateway owns the session

    def test_profile_updated_but_not_cleared(self):
        self.client.get("/me", headers=headers_for(email="a@example.com", full_name="A"))
        self.client.get("/me", headers=headers_for(email="b@example.com", full_name="B"))
        self.assertEqual((self.user("alice")["email"], self.user("alice")["full_name"]), ("b@example.com", "B"))
        self.client.get("/me", headers=headers_for(email=None, full_name=None))
        self.assertEqual((self.user("alice")["email"], self.user("alice")["full_name"]), ("b@example.com", "B"))

    def test_admin_synced_both_ways(self):
        self.assertTrue(self.client.get("/me", headers=headers_for(is_admin=True)).get_json()["is_admin"])
        self.assertEqual(self.user("alice")["role"], "admin")
        self.assertFalse(self.client.get("/me", headers=headers_for(is_admin=False)).get_json()["is_admin"])
        self.assertEqual(self.user("alice")["role"], "user")

    def test_admin_rbac_roles_revoked(self):
        self.client.get("/me", headers=headers_for())
        with self.app.app_context():
            u = self.db.session.query(self.User).filter_by(username="alice").one()
            u.roles.append(self.Role(name="super_admin"))
            u.roles.append(self.Role(name="manager"))
            self.db.session.commit()
        self.assertTrue(self.user("alice")["is_admin"])
        r = self.client.get("/me", headers=headers_for(is_admin=False))
        self.assertFalse(r.get_json()["is_admin"])
        self.assertEqual(self.user("alice")["roles"], ["manager"])

    def test_logout_when_headers_disappear(self):
        self.assertEqual(self.client.get("/me", headers=headers_for()).status_code, 200)
        r = self.client.get("/me")
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r.get_json(), {"error": "unauthenticated"})
        with self.client.session_transaction() as sess:
            self.assertNotIn("_user_id", sess)

    def test_logout_without_require_identity(self):
        app, _db, _User, _Role, _hook = make_app(require_identity=False)
        client = app.test_client()
        self.assertEqual(client.get("/me", headers=headers_for()).status_code, 200)
        r = client.get("/me")
        self.assertEqual(r.status_code, 401)  # Flask-Login's own unauthorized handler
        with client.session_transaction() as sess:
            self.assertNotIn("_user_id", sess)

    def test_bad_signature(self):
        self.assertEqual(self.client.get("/me", headers=headers_for()).status_code, 200)
        h = headers_for()
        h["X-User"] = "mallory"
        r = self.client.get("/me", headers=h)
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r.get_json(), {"error": "invalid_identity", "reason": "bad_signature"})
        self.assertIsNone(self.user("mallory"))
        with self.client.session_transaction() as sess:
            self.assertNotIn("_user_id", sess)

    def test_stale(self):
        r = self.client.get("/me", headers=headers_for(timestamp=int(time.time()) - 3600))
        self.assertEqual(r.get_json()["reason"], "stale_timestamp")

    def test_user_switch(self):
        self.client.get("/me", headers=headers_for("alice"))
        r = self.client.get("/me", headers=headers_for("bob"))
        self.assertEqual(r.get_json()["username"], "bob")

    def test_disabled_user(self):
        self.client.get("/me", headers=headers_for())
        with self.app.app_context():
            u = self.db.session.query(self.User).filter_by(username="alice").one()
            u.is_active = False
            self.db.session.commit()
        r = self.client.get("/me", headers=headers_for())
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r.get_json(), {"error": "account_disabled"})

    def test_disabled_user_page_navigation_gets_a_sign_out_link(self):
        self.client.get("/me", headers=headers_for())
        with self.app.app_context():
            u = self.db.session.query(self.User).filter_by(username="alice").one()
            u.is_active = False
            self.db.session.commit()
        r = self.client.get("/me", headers={**headers_for(), "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
        self.assertIn(b'<a href="/logout">Sign out</a>', r.data)
        r = self.client.post("/me", headers={**headers_for(), "Accept": "text/html"})
        self.assertEqual(r.get_json(), {"error": "account_disabled"}, "a form post or XHR gets JSON")

    def test_admin_promoted_by_a_later_hook_is_demoted_again(self):
        def promote():
            from flask_login import current_user

            if current_user.is_authenticated:
                current_user.role = "admin"
                self.db.session.commit()

        hooks = self.app.before_request_funcs[None]
        hooks.insert(len(hooks) - 1, promote)
        r = self.client.get("/me", headers=headers_for(is_admin=False))
        self.assertFalse(r.get_json()["is_admin"])
        self.assertEqual(self.user("alice")["role"], "user")

    def test_skip_paths_untouched(self):
        self.assertEqual(self.client.get("/static/x.css").status_code, 200)
        h = headers_for()
        h["X-Admin"] = "true"  # even forged headers are ignored on skip paths
        self.assertEqual(self.client.get("/static/x.css", headers=h).status_code, 200)

    def test_create_users_false(self):
        app, _db, _User, _Role, _hook = make_app(create_users=False)
        r = app.test_client().get("/me", headers=headers_for("newcomer"))
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r.get_json(), {"error": "unknown_user"})


class SkipPathTests(unittest.TestCase):
    def test_the_gateways_rule(self):
        from flask_login_recipe import is_skip_path

        prefixes = ("/static/", "/_health")
        self.assertTrue(is_skip_path("/static/app.css", prefixes))
        self.assertFalse(is_skip_path("/static", prefixes))
        self.assertTrue(is_skip_path("/_health", prefixes))
        self.assertTrue(is_skip_path("/_health/db", prefixes))
        self.assertFalse(is_skip_path("/_healthz", prefixes))
        self.assertFalse(is_skip_path("/", ()))

    def test_read_from_the_gateways_variable(self):
        from flask_login_recipe import DEFAULT_SKIP_PATHS, skip_paths_from_env

        self.assertEqual(skip_paths_from_env(environ={}), DEFAULT_SKIP_PATHS)
        self.assertEqual(skip_paths_from_env(environ={"SKIP_AUTH_PATHS": " /api/v1/, /static/ ,"}), ("/api/v1/", "/static/"))
        self.assertEqual(skip_paths_from_env(environ={"SKIP_AUTH_PATHS": ""}), ())


class ImportWithoutFlaskTests(unittest.TestCase):
    def test_module_imports_without_flask(self):
        # The recipe must be importable anywhere; only init_authgate needs Flask.
        import flask_login_recipe

        self.assertTrue(callable(flask_login_recipe.init_authgate))


if __name__ == "__main__":
    unittest.main()
