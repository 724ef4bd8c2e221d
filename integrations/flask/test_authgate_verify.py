"""Unit tests for authgate_verify (standard library only).

Run from this directory:  python3 -m unittest -v
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import unittest
from http.client import HTTPMessage

import authgate_verify as av
from authgate_verify import (
    AuthgateVerificationError,
    Identity,
    canonical_string,
    compute_signature,
    encode_component,
    sign_identity_headers,
    verify_identity_headers,
)

HERE = os.path.dirname(os.path.abspath(__file__))

# TEST VECTOR ONLY - never use this as a real secret.
SECRET = "s" * 32
NOW = 1_700_000_000

# JS-compat vector. The encoded values are what encodeURIComponent produces and
# the signature was computed independently with Node.js:
#   node -e 'const c=require("node:crypto"),e=encodeURIComponent;
#            const canon=["v1","1700000000",e("alice"),"true",e("alice@example.com"),
#              e("Alice Ä. Smith"),["admins","a,b"].map(e).join(",")].join("\n");
#            console.log("v1="+c.createHmac("sha256","s".repeat(32)).update(canon).digest("hex"))'
JS_VECTOR_HEADERS = {
    "X-User": "alice",
    "X-Admin": "true",
    "X-Email": "alice%40example.com",
    "X-Full-Name": "Alice%20%C3%84.%20Smith",
    "X-Groups": "admins,a%2Cb",
    "X-Auth-Timestamp": "1700000000",
    "X-Auth-Signature": "v1=f7808dc4e8044585ce099cb660eb1052b84d6f867852e650fa0a60d2fa3476fc",
}
JS_VECTOR_CANONICAL = (
    "v1\n1700000000\nalice\ntrue\nalice%40example.com\nAlice%20%C3%84.%20Smith\nadmins,a%2Cb"
)


def signed(**overrides):
    kwargs = dict(
        username="alice",
        is_admin=False,
        email="alice@example.com",
        full_name="Alice Smith",
        groups=("staff",),
        timestamp=NOW,
    )
    kwargs.update(overrides)
    username = kwargs.pop("username")
    return sign_identity_headers(SECRET, username, **kwargs)


def sign_raw(ts="1700000000", user="alice", admin="false", email="", full_name="", groups=""):
    """Headers with arbitrary raw (already encoded) values and a valid signature."""
    headers = {
        "X-User": user,
        "X-Admin": admin,
        "X-Email": email,
        "X-Full-Name": full_name,
        "X-Groups": groups,
        "X-Auth-Timestamp": ts,
    }
    headers["X-Auth-Signature"] = compute_signature(
        SECRET, canonical_string(ts, user, admin, email, full_name, groups)
    )
    return headers


class VerifyTests(unittest.TestCase):
    def assertReason(self, reason, headers, **kwargs):
        kwargs.setdefault("now", NOW)
        with self.assertRaises(AuthgateVerificationError) as ctx:
            verify_identity_headers(headers, SECRET, **kwargs)
        self.assertEqual(ctx.exception.reason, reason, str(ctx.exception))
        self.assertIn(reason, av.REASONS)
        return ctx.exception

    # --- good path ---------------------------------------------------------

    def test_good_signature(self):
        ident = verify_identity_headers(signed(is_admin=True), SECRET, now=NOW)
        self.assertEqual(
            ident,
            Identity(
                username="alice",
                email="alice@example.com",
                full_name="Alice Smith",
                groups=("staff",),
                is_admin=True,
                timestamp=NOW,
            ),
        )

    def test_identity_is_frozen(self):
        ident = verify_identity_headers(signed(), SECRET, now=NOW)
        with self.assertRaises(Exception):
            ident.username = "mallory"  # type: ignore[misc]

    def test_bytes_secret(self):
        ident = verify_identity_headers(signed(), SECRET.encode(), now=NOW)
        self.assertEqual(ident.username, "alice")

    def test_empty_optional_values(self):
        h = signed(email=None, full_name=None, groups=())
        self.assertEqual(h["X-Email"], "")
        self.assertEqual(h["X-Groups"], "")
        ident = verify_identity_headers(h, SECRET, now=NOW)
        self.assertIsNone(ident.email)
        self.assertIsNone(ident.full_name)
        self.assertEqual(ident.groups, ())
        self.assertFalse(ident.is_admin)

    def test_absent_optional_headers_are_empty_strings(self):
        # A front proxy (nginx proxy_set_header with an empty value) drops empty
        # headers; absent must verify like empty.
        h = signed(email=None, full_name=None, groups=())
        for name in ("X-Email", "X-Full-Name", "X-Groups"):
            del h[name]
        ident = verify_identity_headers(h, SECRET, now=NOW)
        self.assertEqual((ident.email, ident.full_name, ident.groups), (None, None, ()))

    def test_header_names_are_case_insensitive(self):
        h = {k.lower(): v for k, v in signed().items()}
        self.assertEqual(verify_identity_headers(h, SECRET, now=NOW).username, "alice")
        h = {k.upper(): v for k, v in signed().items()}
        self.assertEqual(verify_identity_headers(h, SECRET, now=NOW).username, "alice")

    def test_other_headers_ignored(self):
        h = dict(signed(), Host="example.com", Cookie="a=b", **{"X-Forwarded-For": "1.2.3.4"})
        self.assertEqual(verify_identity_headers(h, SECRET, now=NOW).username, "alice")

    def test_pairs_and_http_message(self):
        pairs = list(signed().items())
        self.assertEqual(verify_identity_headers(pairs, SECRET, now=NOW).username, "alice")
        msg = HTTPMessage()
        for k, v in pairs:
            msg[k] = v
        self.assertEqual(verify_identity_headers(msg, SECRET, now=NOW).username, "alice")

    def test_surrounding_whitespace_tolerated(self):
        h = {k: f" {v}\t" for k, v in signed().items()}
        self.assertEqual(verify_identity_headers(h, SECRET, now=NOW).username, "alice")

    def test_skew_boundaries(self):
        h = signed()
        verify_identity_headers(h, SECRET, now=NOW + 60)
        verify_identity_headers(h, SECRET, now=NOW - 60)
        verify_identity_headers(h, SECRET, now=NOW + 120, max_skew=120)

    # --- tampering ---------------------------------------------------------

    def test_tampered_user(self):
        h = signed()
        h["X-User"] = "mallory"
        self.assertReason("bad_signature", h)

    def test_tampered_admin(self):
        h = signed(is_admin=False)
        h["X-Admin"] = "true"
        self.assertReason("bad_signature", h)

    def test_tampered_other_fields(self):
        for name, value in (
            ("X-Email", "mallory%40example.com"),
            ("X-Full-Name", "Mallory"),
            ("X-Groups", "admins"),
            ("X-Auth-Timestamp", str(NOW + 1)),
        ):
            with self.subTest(header=name):
                h = signed()
                h[name] = value
                self.assertReason("bad_signature", h)

    def test_removed_optional_header_breaks_signature(self):
        h = signed()
        del h["X-Groups"]
        self.assertReason("bad_signature", h)

    def test_wrong_secret(self):
        h = sign_identity_headers("t" * 32, "alice", timestamp=NOW)
        self.assertReason("bad_signature", h)

    def test_uppercase_hex_rejected(self):
        h = signed()
        h["X-Auth-Signature"] = "v1=" + h["X-Auth-Signature"][3:].upper()
        self.assertReason("malformed_signature", h)

    # --- time --------------------------------------------------------------

    def test_stale_timestamp(self):
        self.assertReason("stale_timestamp", signed(timestamp=NOW - 61))

    def test_future_timestamp(self):
        self.assertReason("future_timestamp", signed(timestamp=NOW + 61))

    def test_non_integer_timestamp(self):
        for ts in ("1700000000.5", "-1700000000", "+1700000000", "17e8", "", "abc", "1" * 16):
            with self.subTest(ts=ts):
                self.assertReason("malformed_timestamp", sign_raw(ts=ts))

    # --- shape -------------------------------------------------------------

    def test_no_identity(self):
        self.assertReason("no_identity", {})
        self.assertReason("no_identity", {"Host": "example.com"})

    def test_missing_signature(self):
        h = signed()
        del h["X-Auth-Signature"]
        self.assertReason("missing_signature", h)

    def test_missing_required_headers(self):
        for name in ("X-User", "X-Admin", "X-Auth-Timestamp"):
            with self.subTest(header=name):
                h = signed()
                del h[name]
                self.assertReason("missing_header", h)

    def test_empty_user(self):
        self.assertReason("missing_header", sign_raw(user=""))

    def test_wrong_version_prefix(self):
        h = signed()
        for bad in ("v2=" + h["X-Auth-Signature"][3:], h["X-Auth-Signature"][3:], "sha256=abc"):
            with self.subTest(sig=bad):
                h["X-Auth-Signature"] = bad
                self.assertReason("unsupported_version", h)

    def test_malformed_signature(self):
        h = signed()
        for bad in ("v1=", "v1=abc", h["X-Auth-Signature"] + "00", "v1=" + "g" * 64):
            with self.subTest(sig=bad):
                h["X-Auth-Signature"] = bad
                self.assertReason("malformed_signature", h)

    def test_malformed_admin_even_when_signed(self):
        for admin in ("TRUE", "1", "yes", ""):
            with self.subTest(admin=admin):
                self.assertReason("malformed_admin", sign_raw(admin=admin))

    def test_duplicate_header_in_list(self):
        h = dict(signed())
        h["X-User"] = ["alice", "bob"]
        self.assertReason("duplicate_header", h)

    def test_duplicate_header_in_pairs(self):
        pairs = list(signed().items()) + [("x-user", "bob")]
        self.assertReason("duplicate_header", pairs)
        msg = HTTPMessage()
        for k, v in pairs:
            msg[k] = v
        self.assertReason("duplicate_header", msg)

    def test_underscore_variant_counts_as_duplicate(self):
        # X_User is folded onto X-User by WSGI; seen side by side it is a repeat.
        pairs = list(signed().items()) + [("X_User", "bob")]
        self.assertReason("duplicate_header", pairs)
        pairs = list(signed().items()) + [("X.Admin", "true")]
        self.assertReason("duplicate_header", pairs)

    def test_folded_duplicate_rejected(self):
        # What werkzeug's EnvironHeaders shows for two X-User headers.
        h = signed()
        h["X-User"] = "alice,bob"
        self.assertReason("duplicate_header", h)
        h = signed()
        h["X-Auth-Signature"] = h["X-Auth-Signature"] + "," + h["X-Auth-Signature"]
        self.assertReason("duplicate_header", h)

    # --- encoding ----------------------------------------------------------

    def test_bad_encoding(self):
        cases = {
            "invalid utf-8": dict(user="%FF"),
            "truncated utf-8": dict(user="%C3"),
            "truncated escape": dict(user="alice%4"),
            "non-hex escape": dict(user="%zz"),
            "unencoded space": dict(full_name="Alice Smith"),
            "unencoded at-sign": dict(email="alice@example.com"),
            "raw non-ascii": dict(full_name="Ä"),
            "bad group": dict(groups="admins,%E2%82"),
        }
        for label, raw in cases.items():
            with self.subTest(case=label):
                self.assertReason("bad_encoding", sign_raw(**raw))

    def test_bytes_values(self):
        h = {k.encode(): v.encode() for k, v in signed().items()}
        self.assertEqual(verify_identity_headers(h, SECRET, now=NOW).username, "alice")
        h[b"X-Full-Name"] = "Ä".encode("utf-8")
        self.assertReason("bad_encoding", h)

    def test_unicode_round_trip(self):
        values = dict(
            username="zoë.ünïcødé",
            email="δοκιμή@παράδειγμα.δοκιμή",
            full_name="José Ä. Núñez 山田太郎 😀 !~*'()-_.",
            groups=("Ünïcødé", "日本語", "x y&z=1?#/%"),
        )
        h = signed(**values)
        for v in h.values():
            v.encode("ascii")  # everything on the wire is ASCII
        ident = verify_identity_headers(h, SECRET, now=NOW)
        self.assertEqual(ident.username, values["username"])
        self.assertEqual(ident.email, values["email"])
        self.assertEqual(ident.full_name, values["full_name"])
        self.assertEqual(ident.groups, values["groups"])

    def test_groups_with_commas_encoded(self):
        h = signed(groups=("a,b", "c", ",", "d,,e"))
        self.assertEqual(h["X-Groups"], "a%2Cb,c,%2C,d%2C%2Ce")
        ident = verify_identity_headers(h, SECRET, now=NOW)
        self.assertEqual(ident.groups, ("a,b", "c", ",", "d,,e"))

    def test_encode_component_matches_encodeURIComponent(self):
        # Expected strings are what encodeURIComponent returns in Node.js.
        self.assertEqual(encode_component("A-Z a_z.0!9~*'()"), "A-Z%20a_z.0!9~*'()")
        self.assertEqual(encode_component(";,/?:@&=+$#"), "%3B%2C%2F%3F%3A%40%26%3D%2B%24%23")
        self.assertEqual(encode_component("Ä😀"), "%C3%84%F0%9F%98%80")
        with self.assertRaises(UnicodeEncodeError):
            encode_component("\ud800")  # encodeURIComponent throws URIError

    # --- JS compatibility --------------------------------------------------

    def test_js_compat_vector_verifies(self):
        ident = verify_identity_headers(JS_VECTOR_HEADERS, SECRET, now=NOW)
        self.assertEqual(
            ident.to_dict(),
            {
                "username": "alice",
                "is_admin": True,
                "email": "alice@example.com",
                "full_name": "Alice Ä. Smith",
                "groups": ["admins", "a,b"],
                "timestamp": 1700000000,
            },
        )

    def test_js_compat_vector_is_reproduced(self):
        h = sign_identity_headers(
            SECRET,
            "alice",
            is_admin=True,
            email="alice@example.com",
            full_name="Alice Ä. Smith",
            groups=["admins", "a,b"],
            timestamp=1700000000,
        )
        self.assertEqual(h, JS_VECTOR_HEADERS)
        self.assertEqual(
            canonical_string(
                h["X-Auth-Timestamp"], h["X-User"], h["X-Admin"], h["X-Email"], h["X-Full-Name"], h["X-Groups"]
            ),
            JS_VECTOR_CANONICAL,
        )

    # --- misuse ------------------------------------------------------------

    def test_empty_secret_is_a_programming_error(self):
        with self.assertRaises(ValueError):
            verify_identity_headers(signed(), "", now=NOW)
        with self.assertRaises(ValueError):
            sign_identity_headers("", "alice")

    def test_groups_must_not_be_a_string(self):
        with self.assertRaises(TypeError):
            sign_identity_headers(SECRET, "alice", groups="admins")


class CliTests(unittest.TestCase):
    """The CLI contract the TypeScript tests rely on."""

    def run_cli(self, args, stdin, env_secret=SECRET):
        env = dict(os.environ)
        env.pop("AUTHGATE_TEST_SECRET", None)
        if env_secret is not None:
            env["AUTHGATE_TEST_SECRET"] = env_secret
        return subprocess.run(
            [sys.executable, os.path.join(HERE, "authgate_verify.py"), *args],
            input=stdin.encode("utf-8"),
            capture_output=True,
            env=env,
            timeout=30,
        )

    def test_verify_ok(self):
        p = self.run_cli(
            ["--secret-env", "AUTHGATE_TEST_SECRET", "--now", str(NOW)], json.dumps(JS_VECTOR_HEADERS)
        )
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        out = json.loads(p.stdout.decode("utf-8"))
        self.assertEqual(out["full_name"], "Alice Ä. Smith")
        self.assertEqual(out["groups"], ["admins", "a,b"])
        self.assertIs(out["is_admin"], True)

    def test_verify_failure(self):
        h = dict(JS_VECTOR_HEADERS, **{"X-Admin": "false"})
        p = self.run_cli(["--secret-env", "AUTHGATE_TEST_SECRET", "--now", str(NOW)], json.dumps(h))
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        self.assertTrue(p.stderr.decode().startswith("bad_signature: "), p.stderr)

    def test_verify_stale_by_real_clock(self):
        p = self.run_cli(["--secret-env", "AUTHGATE_TEST_SECRET"], json.dumps(JS_VECTOR_HEADERS))
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.decode().startswith("stale_timestamp: "), p.stderr)

    def test_verify_duplicate_as_list(self):
        h = dict(JS_VECTOR_HEADERS, **{"x-user": ["alice", "bob"]})
        del h["X-User"]
        p = self.run_cli(["--secret-env", "AUTHGATE_TEST_SECRET", "--now", str(NOW)], json.dumps(h))
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.decode().startswith("duplicate_header: "), p.stderr)

    def test_usage_errors_exit_2(self):
        for args, stdin, secret in (
            (["--secret-env", "AUTHGATE_TEST_SECRET"], "not json", SECRET),
            (["--secret-env", "AUTHGATE_TEST_SECRET"], "[]", SECRET),
            (["--secret-env", "AUTHGATE_TEST_SECRET"], '{"X-User": 1}', SECRET),
            (["--secret-env", "AUTHGATE_TEST_SECRET"], "{}", None),
            ([], "{}", SECRET),
        ):
            with self.subTest(args=args, stdin=stdin):
                p = self.run_cli(args, stdin, env_secret=secret)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(p.stdout, b"")

    def test_sign_then_verify(self):
        ident = {
            "username": "zoë",
            "is_admin": False,
            "email": None,
            "full_name": "Zoë Q",
            "groups": ["a,b", "c"],
            "timestamp": NOW,
        }
        p = self.run_cli(["--sign", "--secret-env", "AUTHGATE_TEST_SECRET"], json.dumps(ident))
        self.assertEqual(p.returncode, 0, p.stderr)
        headers = json.loads(p.stdout)
        self.assertEqual(headers["X-Groups"], "a%2Cb,c")
        p = self.run_cli(["--secret-env", "AUTHGATE_TEST_SECRET", "--now", str(NOW)], json.dumps(headers))
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual(out, {**ident, "groups": ["a,b", "c"]})

    def test_secret_file(self):
        import tempfile

        with tempfile.NamedTemporaryFile("w", delete=False) as fh:
            fh.write(SECRET + "\n")
        try:
            p = self.run_cli(
                ["--secret-file", fh.name, "--now", str(NOW)], json.dumps(JS_VECTOR_HEADERS), env_secret=None
            )
        finally:
            os.unlink(fh.name)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_main_in_process(self):
        os.environ["AUTHGATE_TEST_SECRET_INPROC"] = SECRET
        try:
            out, err = io.StringIO(), io.StringIO()
            rc = av.main(
                ["--secret-env", "AUTHGATE_TEST_SECRET_INPROC", "--now", str(NOW)],
                stdin=io.StringIO(json.dumps(JS_VECTOR_HEADERS)),
                stdout=out,
                stderr=err,
            )
        finally:
            del os.environ["AUTHGATE_TEST_SECRET_INPROC"]
        self.assertEqual(rc, 0, err.getvalue())
        self.assertEqual(json.loads(out.getvalue())["username"], "alice")


if __name__ == "__main__":
    unittest.main()
