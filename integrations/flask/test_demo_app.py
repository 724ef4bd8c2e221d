"""Tests of demo_app.py. Skipped when this interpreter has no Flask.

Run from this directory:  python3 -m unittest -v   (or /usr/bin/python3 ...)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

from authgate_verify import sign_identity_headers

HAVE_FLASK = importlib.util.find_spec("flask") is not None
HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "s" * 32  # TEST VECTOR ONLY


def headers_for(username="alice", **kw):
    kw.setdefault("timestamp", int(time.time()))
    return sign_identity_headers(SECRET, username, **kw)


@unittest.skipUnless(HAVE_FLASK, "Flask is not installed for this interpreter")
class DemoAppTests(unittest.TestCase):
    def setUp(self):
        import demo_app

        self.app = demo_app.create_app(SECRET)
        self.client = self.app.test_client()

    def test_whoami(self):
        h = headers_for(is_admin=True, email="a@example.com", full_name="Alice Ä", groups=["x,y"])
        r = self.client.get("/whoami", headers=h)
        self.assertEqual(r.status_code, 200, r.data)
        self.assertEqual(
            r.get_json(),
            {
                "username": "alice",
                "is_admin": True,
                "email": "a@example.com",
                "full_name": "Alice Ä",
                "groups": ["x,y"],
            },
        )

    def test_whoami_without_headers(self):
        r = self.client.get("/whoami")
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r.get_json(), {"error": "no_identity"})

    def test_forged_headers_rejected_everywhere(self):
        h = headers_for()
        h["X-Admin"] = "true"
        for path in ("/whoami", "/public", "/nope"):
            r = self.client.get(path, headers=h)
            self.assertEqual(r.status_code, 401, path)
            self.assertEqual(r.get_json(), {"error": "bad_signature"})

    def test_stale_headers(self):
        r = self.client.get("/whoami", headers=headers_for(timestamp=int(time.time()) - 600))
        self.assertEqual(r.get_json(), {"error": "stale_timestamp"})

    def test_session_dropped_when_headers_disappear(self):
        r = self.client.get("/whoami", headers=headers_for())
        self.assertEqual(r.status_code, 200)
        with self.client.session_transaction() as sess:
            self.assertEqual(sess.get("username"), "alice")
        r = self.client.get("/whoami")
        self.assertEqual(r.status_code, 401)
        with self.client.session_transaction() as sess:
            self.assertNotIn("username", sess)

    def test_admin_synced_both_ways(self):
        self.client.get("/whoami", headers=headers_for(is_admin=True))
        users = self.client.get("/users", headers=headers_for(is_admin=True)).get_json()["users"]
        self.assertTrue(users["alice"]["is_admin"])
        users = self.client.get("/users", headers=headers_for(is_admin=False)).get_json()["users"]
        self.assertFalse(users["alice"]["is_admin"])

    def test_user_switch(self):
        self.client.get("/whoami", headers=headers_for("alice"))
        r = self.client.get("/whoami", headers=headers_for("bob"))
        self.assertEqual(r.get_json()["username"], "bob")
        with self.client.session_transaction() as sess:
            self.assertEqual(sess.get("username"), "bob")

    def test_public(self):
        self.assertEqual(self.client.get("/public").get_json(), {"public": True, "username": None})
        self.assertEqual(self.client.get("/healthz").status_code, 200)


@unittest.skipUnless(HAVE_FLASK, "Flask is not installed for this interpreter")
class DemoAppProcessTests(unittest.TestCase):
    """The command line the TypeScript tests use: --port 0 and the ready line."""

    def test_run_as_script(self):
        env = dict(os.environ, DEMO_SECRET=SECRET)
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "demo_app.py"), "--port", "0", "--secret-env", "DEMO_SECRET", "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            line = proc.stdout.readline().decode()
            self.assertTrue(line.startswith("demo_app listening on http://127.0.0.1:"), line)
            base = line.split(" on ", 1)[1].strip()
            req = urllib.request.Request(base + "/whoami", headers=headers_for(full_name="Zoë"))
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.loads(resp.read())
            self.assertEqual(body["full_name"], "Zoë")
            with self.assertRaises(urllib.error.HTTPError) as ctx:
                urllib.request.urlopen(base + "/whoami", timeout=10)
            self.assertEqual(ctx.exception.code, 401)
            self.assertEqual(json.loads(ctx.exception.read()), {"error": "no_identity"})
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stdout.close()

    def test_missing_secret_exits_2(self):
        env = {k: v for k, v in os.environ.items() if k != "DEMO_SECRET_UNSET"}
        p = subprocess.run(
            [sys.executable, os.path.join(HERE, "demo_app.py"), "--port", "0", "--secret-env", "DEMO_SECRET_UNSET"],
            capture_output=True,
            env=env,
            timeout=30,
        )
        self.assertEqual(p.returncode, 2, p.stderr)


if __name__ == "__main__":
    unittest.main()
