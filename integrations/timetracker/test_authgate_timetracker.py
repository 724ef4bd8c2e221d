"""Tests of authgate_timetracker against TimeTracker itself (not a stand-in).

Needs a TimeTracker checkout in TIMETRACKER_DIR (copied to a temporary directory here) and its
packages (Debian: see docs/TIMETRACKER.md); skipped otherwise. Run with Debian's Python:

    TIMETRACKER_DIR=/path/to/TimeTracker PYTHONPATH=../flask:../../scripts/timetracker/python \\
        /usr/bin/python3 -m unittest -v test_authgate_timetracker

One TimeTracker app per process: its Flask-SQLAlchemy, Socket.IO and login manager are module-level.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
import tempfile
import time
import unittest

from authgate_verify import sign_identity_headers

SECRET = "t" * 40  # TEST ONLY
CHECKOUT = os.environ.get("TIMETRACKER_DIR", "")
HAVE_TIMETRACKER = bool(CHECKOUT) and os.path.isfile(os.path.join(CHECKOUT, "app", "__init__.py"))
HAVE_PACKAGES = all(
    importlib.util.find_spec(m) is not None
    for m in ("flask", "flask_login", "flask_sqlalchemy", "flask_migrate", "flask_socketio", "flask_babel", "authlib")
)
REASON = "needs TIMETRACKER_DIR (a TimeTracker checkout) and TimeTracker's packages for this interpreter"

tt = {}  # what setUpModule built


def headers(username, **kw):
    kw.setdefault("timestamp", int(time.time()))
    return sign_identity_headers(SECRET, username, **kw)


def setUpModule():
    if not (HAVE_TIMETRACKER and HAVE_PACKAGES):
        return
    work = tempfile.mkdtemp(prefix="authgate-tt-unit-")
    tt["work"] = work
    checkout = os.path.join(work, "timetracker")
    shutil.copytree(CHECKOUT, checkout)
    for root, dirs, files in os.walk(checkout):  # the fixture may be read-only
        for name in dirs + files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    sys.path.insert(0, checkout)
    os.environ.update(
        DATABASE_URL=f"sqlite:///{work}/tt.db",
        SECRET_KEY="timetracker-test-only-secret",  # TEST ONLY
        LOG_FILE=os.path.join(work, "timetracker.log"),
        LICENSE_SERVER_ENABLED="false",
        HEADER_SIGNING_SECRET=SECRET,
    )
    os.environ.pop("SKIP_AUTH_PATHS", None)
    os.environ.pop("ADMIN_USERNAMES", None)  # TimeTracker's default: "admin" is promoted on every request
    cwd = os.getcwd()
    os.chdir(checkout)
    try:
        import authgate_timetracker

        app = authgate_timetracker.create_app()
    finally:
        os.chdir(cwd)
    from flask import url_for

    @app.get("/__test/external-url")  # test only: what TimeTracker builds as an absolute URL
    def external_url():
        return url_for("main.dashboard", _external=True)

    from app import db, socketio
    from app.models import Client, Project, User

    with app.app_context():
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        client = Client("Acme")
        db.session.add(client)
        db.session.commit()
        project = Project("Website", client_id=client.id)
        db.session.add(project)
        db.session.commit()
        tt["project_id"] = project.id
    tt.update(app=app, db=db, socketio=socketio, User=User)


def tearDownModule():
    if "work" in tt:
        shutil.rmtree(tt["work"], ignore_errors=True)


@unittest.skipUnless(HAVE_TIMETRACKER and HAVE_PACKAGES, REASON)
class TimeTrackerBehindTheGateway(unittest.TestCase):
    def setUp(self):
        self.app = tt["app"]
        self.client = self.app.test_client()

    def user(self, username):
        with self.app.app_context():
            return tt["db"].session.query(tt["User"]).filter_by(username=username).first()

    def set_active(self, username, active):
        with self.app.app_context():
            u = tt["db"].session.query(tt["User"]).filter_by(username=username).one()
            u.is_active = active
            tt["db"].session.commit()

    def test_signed_request_shows_that_users_dashboard(self):
        r = self.client.get("/", headers=headers("dana", full_name="Dana Doe"))
        self.assertEqual(r.status_code, 200)
        self.assertIn(b"Dana Doe", r.data)

    def test_no_identity_is_refused_as_json_or_page(self):
        r = self.client.get("/projects")
        self.assertEqual((r.status_code, r.get_json()), (401, {"error": "unauthenticated"}))
        r = self.client.get("/projects", headers={"Accept": "text/html,*/*;q=0.8"})
        self.assertEqual(r.status_code, 401)
        self.assertIn(b"<h1>Not signed in</h1>", r.data)

    def test_forged_and_stale_identity_refused(self):
        forged = headers("erin")
        forged["X-Admin"] = "true"
        self.assertEqual(self.client.get("/").get_json(), {"error": "unauthenticated"})
        r = self.client.get("/", headers=forged)
        self.assertEqual((r.status_code, r.get_json()["reason"]), (401, "bad_signature"))
        r = self.client.get("/", headers=headers("erin", timestamp=int(time.time()) - 3600))
        self.assertEqual((r.status_code, r.get_json()["reason"]), (401, "stale_timestamp"))
        self.assertIsNone(self.user("erin"), "no user row for a refused identity")

    def test_copied_session_cookie_is_useless_without_the_gateway(self):
        self.assertEqual(self.client.get("/", headers=headers("frank")).status_code, 200)
        cookie = self.client.get_cookie("session") if hasattr(self.client, "get_cookie") else None
        jar = getattr(self.client, "cookie_jar", None)
        value = cookie.value if cookie is not None else next(c.value for c in jar if c.name == "session")
        thief = self.app.test_client()
        thief.set_cookie("localhost", "session", value) if jar is not None else thief.set_cookie("session", value)
        r = thief.get("/")
        self.assertEqual(r.status_code, 401)

    def test_admin_rights_come_from_the_gateway_only(self):
        # "admin" is in TimeTracker's default ADMIN_USERNAMES, which promotes it on every request.
        self.assertEqual(self.client.get("/admin", headers=headers("admin", is_admin=False)).status_code, 302)
        self.assertEqual(self.user("admin").role, "user")
        self.assertEqual(self.client.get("/admin", headers=headers("admin", is_admin=True)).status_code, 200)
        self.assertEqual(self.user("admin").role, "admin")
        r = self.client.get("/admin", headers=headers("admin", is_admin=False))
        self.assertEqual(r.status_code, 302, "a demotion holds on the very next request")
        self.assertEqual(self.user("admin").role, "user")

    def test_promotion_by_any_other_hook_is_undone(self):
        app = self.app

        def promote_everyone():  # what another TimeTracker version's hook might do
            from flask_login import current_user

            if current_user.is_authenticated and current_user.role != "admin":
                current_user.role = "admin"
                tt["db"].session.commit()

        hooks = app.before_request_funcs[None]
        hooks.insert(len(hooks) - 1, promote_everyone)
        try:
            r = self.client.get("/admin", headers=headers("gina", is_admin=False))
        finally:
            hooks.remove(promote_everyone)
        self.assertEqual(r.status_code, 302)
        self.assertEqual(self.user("gina").role, "user")

    def test_disabled_user_gets_a_page_with_a_way_out(self):
        self.assertEqual(self.client.get("/", headers=headers("hank")).status_code, 200)
        self.set_active("hank", False)
        try:
            r = self.client.get("/", headers={**headers("hank"), "Accept": "text/html"})
            self.assertEqual(r.status_code, 403)
            self.assertIn(b"Account disabled", r.data)
            self.assertIn(b'<a href="/logout">Sign out</a>', r.data)
            r = self.client.get("/api/timer/status", headers={**headers("hank"), "Accept": "application/json"})
            self.assertEqual((r.status_code, r.get_json()), (403, {"error": "account_disabled"}))
        finally:
            self.set_active("hank", True)

    def test_absolute_urls_use_the_public_host(self):
        h = {**headers("ivy"), "X-Forwarded-Host": "tt.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        r = self.client.get("/__test/external-url", headers=h)
        self.assertEqual(r.get_data(as_text=True), "https://tt.example.com/dashboard")

    def test_skip_paths_are_the_timetracker_preset(self):
        # /api/v1/ belongs to token clients (in versions that have it): no 401 from the integration.
        self.assertEqual(self.client.get("/api/v1/projects").status_code, 404)
        self.assertEqual(self.client.get("/_health").status_code, 200)
        self.assertEqual(self.client.get("/_healthz").status_code, 401, "whole segments, as the gateway matches")

    def test_socketio_transport_needs_a_signed_identity(self):
        url = "/socket.io/?EIO=4&transport=polling"
        r = self.client.get(url)
        self.assertEqual((r.status_code, r.get_json()["reason"]), (401, "no_identity"))
        forged = headers("jack")
        forged["X-User"] = "admin"
        self.assertEqual(self.client.get(url, headers=forged).get_json()["reason"], "bad_signature")
        r = self.client.get(url, headers=headers("jack"))
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.data.startswith(b"0{"), r.data)

    def socket(self, session_user, identity_user):
        """A Socket.IO client whose TimeTracker session is session_user's, connecting as identity_user."""
        http = self.app.test_client()
        if session_user is not None:
            self.assertEqual(http.get("/", headers=headers(session_user)).status_code, 200)
        h = headers(identity_user) if identity_user is not None else {}
        return tt["socketio"].test_client(self.app, flask_test_client=http, headers=h)

    def test_socketio_connect_needs_the_sessions_own_user(self):
        self.assertFalse(self.socket("kate", None).is_connected(), "no identity")
        self.assertFalse(self.socket(None, "kate").is_connected(), "identity without a TimeTracker session")
        self.assertFalse(self.socket("kate", "liam").is_connected(), "someone else's session cookie")
        ok = self.socket("kate", "kate")
        self.assertTrue(ok.is_connected())
        ok.disconnect()

    def test_timer_events_reach_only_their_user(self):
        mine, theirs = self.socket("mia", "mia"), self.socket("noah", "noah")
        mine.get_received(), theirs.get_received()
        r = self.client.get(f"/timer/start/{tt['project_id']}", headers=headers("mia"))
        self.assertEqual(r.status_code, 302)
        self.assertEqual([m["name"] for m in mine.get_received()], ["timer_started"])
        self.assertEqual(theirs.get_received(), [])
        r = self.client.post("/timer/stop", headers=headers("mia"))
        self.assertEqual(r.status_code, 302)
        self.assertEqual([m["name"] for m in mine.get_received()], ["timer_stopped"])
        self.assertEqual(theirs.get_received(), [])


class SigningSecretTests(unittest.TestCase):
    def setUp(self):
        from authgate_timetracker import AuthgateSetupError, read_signing_secret

        self.read, self.Error = read_signing_secret, AuthgateSetupError

    def test_missing_says_what_to_set(self):
        with self.assertRaisesRegex(self.Error, "HEADER_SIGNING_SECRET is not set"):
            self.read({})

    def test_short_refused(self):
        with self.assertRaisesRegex(self.Error, "shorter than 32 bytes"):
            self.read({"HEADER_SIGNING_SECRET": "short"})

    def test_from_file_with_trailing_newline(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as fh:
            fh.write("f" * 40 + "\n")
        try:
            self.assertEqual(self.read({"HEADER_SIGNING_SECRET_FILE": fh.name}), b"f" * 40)
            with self.assertRaisesRegex(self.Error, "not both"):
                self.read({"HEADER_SIGNING_SECRET_FILE": fh.name, "HEADER_SIGNING_SECRET": "x" * 40})
        finally:
            os.unlink(fh.name)
        with self.assertRaisesRegex(self.Error, "cannot read"):
            self.read({"HEADER_SIGNING_SECRET_FILE": fh.name})


if __name__ == "__main__":
    unittest.main()
