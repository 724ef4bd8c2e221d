#!/usr/bin/env python3
"""Reference verifier for authgate identity headers (docs/PROTOCOL.md#the-signature), standard library only.

authgate forwards every authenticated request to the upstream application with
these headers (values UTF-8 percent-encoded exactly like JavaScript's
``encodeURIComponent``):

    X-User            username
    X-Admin           ``true`` or ``false``
    X-Email           email, or empty
    X-Full-Name       full name, or empty
    X-Groups          each group encoded, joined by ``,``
    X-Auth-Timestamp  Unix time (seconds) when the gateway signed the request
    X-Auth-Signature  ``v1=`` + lowercase hex HMAC-SHA256(HEADER_SIGNING_SECRET, canonical)

where ``canonical`` is these seven lines joined by ``\\n`` (no trailing newline),
using the header values exactly as sent (still encoded), absent = empty string::

    v1
    <X-Auth-Timestamp>
    <X-User>
    <X-Admin>
    <X-Email>
    <X-Full-Name>
    <X-Groups>

An upstream accepts a request only when the HMAC matches (constant-time
comparison) and the timestamp is within ``max_skew`` (60) seconds of its clock.

Library use (Python >= 3.9, no third-party packages)::

    from authgate_verify import verify_identity_headers, AuthgateVerificationError

    try:
        ident = verify_identity_headers(request.headers, os.environ["HEADER_SIGNING_SECRET"])
    except AuthgateVerificationError as err:
        ...  # err.reason is one of the REASON_* codes below
    ident.username, ident.is_admin, ident.email, ident.full_name, ident.groups

Command line (used by the TypeScript test-suite through child_process)::

    python3 authgate_verify.py --secret-env HEADER_SIGNING_SECRET [--max-skew 60] [--now UNIX]
        stdin : a JSON object {header name: string | [string, ...]}; names are
                case-insensitive; a list with more than one element is a
                repeated header (rejected); other headers are ignored.
        exit 0: stdout = one line of JSON
                {"username", "is_admin", "email", "full_name", "groups", "timestamp"}
                (email/full_name are null when empty, groups is a list)
        exit 1: verification failed; stdout is empty; stderr = one line
                "<reason>: <human readable message>", reason being a REASON_* code
        exit 2: usage or input error (bad arguments, secret variable unset or
                empty, stdin not a JSON object of strings)

    python3 authgate_verify.py --sign --secret-env NAME [--now UNIX]
        stdin : {"username": str, "is_admin": bool, "email": str|null,
                 "full_name": str|null, "groups": [str], "timestamp": int (optional)}
        exit 0: stdout = one line of JSON with the seven headers, as the gateway sends them
        exit 2: usage or input error

    ``--secret-file PATH`` may replace ``--secret-env NAME`` (like the gateway's
    ``<NAME>_FILE`` convention; one trailing newline is stripped).

Repeated headers: a verifier can only reject a repeated header if the mapping
it is given still shows the repetition (``werkzeug.datastructures.Headers``,
``http.client.HTTPMessage``, ``wsgiref.headers.Headers``, a dict whose value is a
list). WSGI cannot: a WSGI server folds repeated headers into one
``HTTP_X_USER`` value (werkzeug's dev server and ``EnvironHeaders`` join them
with ``,``), and maps ``X_User`` and ``X-User`` to the same key. That is safe
here because (1) authgate removes every client-sent copy of these headers,
whatever the case and with ``_``/``.`` read as ``-``, before it sets its own,
and (2) none of the single-valued headers can legitimately contain a raw ``,``
(``encodeURIComponent`` encodes it as ``%2C``), so a folded duplicate is
rejected here as ``duplicate_header`` and anyway would not match the HMAC.
Never expose the upstream directly: bind it to localhost / a private network
so that every request goes through the gateway (or a front proxy in
forward-auth mode that strips the same headers).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, unquote

__all__ = [
    "AuthgateVerificationError",
    "Identity",
    "verify_identity_headers",
    "sign_identity_headers",
    "canonical_string",
    "compute_signature",
    "encode_component",
    "IDENTITY_HEADERS",
    "DEFAULT_MAX_SKEW",
]

SIGNATURE_VERSION = "v1"
DEFAULT_MAX_SKEW = 60

H_USER = "X-User"
H_ADMIN = "X-Admin"
H_EMAIL = "X-Email"
H_FULL_NAME = "X-Full-Name"
H_GROUPS = "X-Groups"
H_TIMESTAMP = "X-Auth-Timestamp"
H_SIGNATURE = "X-Auth-Signature"

#: The seven headers the gateway sets, in the order it documents them.
IDENTITY_HEADERS: Tuple[str, ...] = (
    H_USER,
    H_ADMIN,
    H_EMAIL,
    H_FULL_NAME,
    H_GROUPS,
    H_TIMESTAMP,
    H_SIGNATURE,
)

# Reason codes carried by AuthgateVerificationError.reason (and printed by the CLI).
REASON_NO_IDENTITY = "no_identity"  # none of the identity headers is present
REASON_MISSING_SIGNATURE = "missing_signature"  # identity headers without X-Auth-Signature
REASON_MISSING_HEADER = "missing_header"  # X-User / X-Admin / X-Auth-Timestamp absent, or X-User empty
REASON_DUPLICATE_HEADER = "duplicate_header"  # a header sent more than once (or folded with ",")
REASON_UNSUPPORTED_VERSION = "unsupported_version"  # signature does not start with "v1="
REASON_MALFORMED_SIGNATURE = "malformed_signature"  # "v1=" not followed by 64 lowercase hex digits
REASON_MALFORMED_TIMESTAMP = "malformed_timestamp"  # not a plain integer string
REASON_STALE_TIMESTAMP = "stale_timestamp"  # older than max_skew seconds
REASON_FUTURE_TIMESTAMP = "future_timestamp"  # more than max_skew seconds ahead
REASON_BAD_SIGNATURE = "bad_signature"  # HMAC does not match (forged or tampered)
REASON_MALFORMED_ADMIN = "malformed_admin"  # X-Admin neither "true" nor "false" (signed but invalid)
REASON_BAD_ENCODING = "bad_encoding"  # not valid encodeURIComponent output / not UTF-8

REASONS: Tuple[str, ...] = (
    REASON_NO_IDENTITY,
    REASON_MISSING_SIGNATURE,
    REASON_MISSING_HEADER,
    REASON_DUPLICATE_HEADER,
    REASON_UNSUPPORTED_VERSION,
    REASON_MALFORMED_SIGNATURE,
    REASON_MALFORMED_TIMESTAMP,
    REASON_STALE_TIMESTAMP,
    REASON_FUTURE_TIMESTAMP,
    REASON_BAD_SIGNATURE,
    REASON_MALFORMED_ADMIN,
    REASON_BAD_ENCODING,
)

# What encodeURIComponent leaves alone (RFC 3986 unreserved minus nothing, plus !*'()).
_URI_COMPONENT_SAFE = "-_.!~*'()"
_ENCODED_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()]|%[0-9A-Fa-f]{2})*\Z")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}\Z")
_SIGNATURE_RE = re.compile(r"v1=[0-9a-f]{64}\Z")
_OWS = " \t"

Secret = Union[str, bytes, bytearray]


class AuthgateVerificationError(Exception):
    """The identity headers are missing, stale, malformed or forged.

    ``reason`` is a stable machine-readable code (one of ``REASONS``);
    ``str(err)`` is ``"<reason>: <message>"``.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        self.message = message or reason
        super().__init__(f"{reason}: {self.message}")


@dataclass(frozen=True)
class Identity:
    """A verified identity, values already percent-decoded."""

    username: str
    email: Optional[str]
    full_name: Optional[str]
    groups: Tuple[str, ...]
    is_admin: bool
    timestamp: int

    def to_dict(self) -> dict:
        return {
            "username": self.username,
            "is_admin": self.is_admin,
            "email": self.email,
            "full_name": self.full_name,
            "groups": list(self.groups),
            "timestamp": self.timestamp,
        }


# --------------------------------------------------------------------------- helpers


def encode_component(value: str) -> str:
    """Percent-encode like JavaScript's ``encodeURIComponent`` (UTF-8)."""
    # quote() raises UnicodeEncodeError on lone surrogates, as encodeURIComponent
    # throws URIError: neither can be signed.
    return quote(value, safe=_URI_COMPONENT_SAFE, encoding="utf-8", errors="strict")


def _secret_bytes(secret: Secret) -> bytes:
    if isinstance(secret, (bytes, bytearray)):
        key = bytes(secret)
    elif isinstance(secret, str):
        key = secret.encode("utf-8")  # Node's createHmac(alg, string) uses UTF-8 too
    else:
        raise TypeError("secret must be str or bytes")
    if not key:
        # A programming/configuration error, not a property of the request.
        raise ValueError("the header signing secret is empty")
    return key


def canonical_string(
    timestamp: str,
    user: str,
    admin: str,
    email: str = "",
    full_name: str = "",
    groups: str = "",
) -> str:
    """The string that is signed, from the header values exactly as sent (encoded)."""
    return "\n".join((SIGNATURE_VERSION, timestamp, user, admin, email, full_name, groups))


def compute_signature(secret: Secret, canonical: str) -> str:
    """``v1=`` + lowercase hex HMAC-SHA256 of the canonical string."""
    digest = hmac.new(_secret_bytes(secret), canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def _normalize_name(name: Any) -> str:
    # The same folding the gateway applies when it strips client-sent copies:
    # case-insensitive, "_" and "." read as "-".
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return str(name).strip().lower().replace("_", "-").replace(".", "-")


_WANTED = {h.lower(): h for h in IDENTITY_HEADERS}


def _as_text(value: Any, header: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise AuthgateVerificationError(REASON_BAD_ENCODING, f"{header} is not ASCII") from None
    if not isinstance(value, str):
        raise AuthgateVerificationError(REASON_BAD_ENCODING, f"{header} is not a string")
    return value


def _iter_items(headers: Any) -> Iterable[Tuple[Any, Any]]:
    items = getattr(headers, "items", None)
    if callable(items):
        # werkzeug Headers, http.client.HTTPMessage, wsgiref Headers, aiohttp and
        # starlette headers all yield every (name, value) pair, repeats included.
        return items()
    # A sequence of (name, value) pairs, e.g. a raw ASGI header list.
    return iter(headers)


def _collect(headers: Any) -> dict:
    """Map each identity header present to its single value; reject repeats."""
    found: dict = {}
    for name, value in _iter_items(headers):
        canonical_name = _WANTED.get(_normalize_name(name))
        if canonical_name is None:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        found.setdefault(canonical_name, []).extend(values)
    result = {}
    for header, values in found.items():
        if len(values) != 1:
            raise AuthgateVerificationError(
                REASON_DUPLICATE_HEADER, f"{header} appears {len(values)} times"
            )
        result[header] = _as_text(values[0], header).strip(_OWS)
    return result


def _decode(value: str, header: str) -> str:
    """Strict decodeURIComponent: only encodeURIComponent's output is accepted."""
    if not _ENCODED_RE.match(value):
        raise AuthgateVerificationError(
            REASON_BAD_ENCODING, f"{header} is not percent-encoded like encodeURIComponent"
        )
    try:
        return unquote(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise AuthgateVerificationError(REASON_BAD_ENCODING, f"{header} is not valid UTF-8") from None


# --------------------------------------------------------------------------- API


def verify_identity_headers(
    headers: Mapping[str, str],
    secret: Secret,
    *,
    max_skew: int = DEFAULT_MAX_SKEW,
    now: Optional[float] = None,
) -> Identity:
    """Verify authgate's identity headers and return the identity they carry.

    ``headers`` is any case-insensitive or plain mapping of request headers
    (``flask.request.headers``, a dict, ``http.client.HTTPMessage``...), or a
    sequence of ``(name, value)`` pairs. Raises ``AuthgateVerificationError``
    when the headers are absent, repeated, malformed, stale or forged, and
    ``ValueError`` when ``secret`` is empty.
    """
    key = _secret_bytes(secret)
    if now is None:
        now = time.time()

    h = _collect(headers)
    if not h:
        raise AuthgateVerificationError(REASON_NO_IDENTITY, "no authgate identity headers")

    # werkzeug's EnvironHeaders (and WSGI in general) folds a repeated header
    # into one value joined with ",". encodeURIComponent never leaves a raw ","
    # and the other values cannot contain one, so a "," here is a folded repeat.
    for header in (H_USER, H_ADMIN, H_EMAIL, H_FULL_NAME, H_TIMESTAMP, H_SIGNATURE):
        if "," in h.get(header, ""):
            raise AuthgateVerificationError(
                REASON_DUPLICATE_HEADER, f"{header} was sent more than once (folded with ',')"
            )

    signature = h.get(H_SIGNATURE)
    if signature is None:
        raise AuthgateVerificationError(REASON_MISSING_SIGNATURE, f"{H_SIGNATURE} is missing")
    if not signature.startswith(SIGNATURE_VERSION + "="):
        raise AuthgateVerificationError(
            REASON_UNSUPPORTED_VERSION, f"{H_SIGNATURE} must start with '{SIGNATURE_VERSION}='"
        )
    if not _SIGNATURE_RE.match(signature):
        raise AuthgateVerificationError(
            REASON_MALFORMED_SIGNATURE, f"{H_SIGNATURE} must be 'v1=' and 64 lowercase hex digits"
        )

    for header in (H_USER, H_ADMIN, H_TIMESTAMP):
        if header not in h:
            raise AuthgateVerificationError(REASON_MISSING_HEADER, f"{header} is missing")

    raw_ts = h[H_TIMESTAMP]
    if not _TIMESTAMP_RE.match(raw_ts):
        raise AuthgateVerificationError(
            REASON_MALFORMED_TIMESTAMP, f"{H_TIMESTAMP} must be an integer number of seconds"
        )
    timestamp = int(raw_ts)
    if now - timestamp > max_skew:
        raise AuthgateVerificationError(
            REASON_STALE_TIMESTAMP, f"signed {int(now - timestamp)}s ago (max {max_skew}s)"
        )
    if timestamp - now > max_skew:
        raise AuthgateVerificationError(
            REASON_FUTURE_TIMESTAMP, f"signed {int(timestamp - now)}s in the future (max {max_skew}s)"
        )

    canonical = canonical_string(
        raw_ts,
        h[H_USER],
        h[H_ADMIN],
        h.get(H_EMAIL, ""),
        h.get(H_FULL_NAME, ""),
        h.get(H_GROUPS, ""),
    )
    try:
        canonical_bytes = canonical.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates smuggled in through a str mapping
        raise AuthgateVerificationError(REASON_BAD_ENCODING, "header values are not text") from None
    expected = SIGNATURE_VERSION + "=" + hmac.new(key, canonical_bytes, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        raise AuthgateVerificationError(REASON_BAD_SIGNATURE, "signature does not match")

    # From here on the values were signed by the gateway; reject what it should
    # never produce rather than guess.
    admin = h[H_ADMIN]
    if admin not in ("true", "false"):
        raise AuthgateVerificationError(REASON_MALFORMED_ADMIN, f"{H_ADMIN} must be 'true' or 'false'")

    username = _decode(h[H_USER], H_USER)
    if not username:
        raise AuthgateVerificationError(REASON_MISSING_HEADER, f"{H_USER} is empty")
    email = _decode(h.get(H_EMAIL, ""), H_EMAIL)
    full_name = _decode(h.get(H_FULL_NAME, ""), H_FULL_NAME)
    raw_groups = h.get(H_GROUPS, "")
    groups = tuple(_decode(g, H_GROUPS) for g in raw_groups.split(",")) if raw_groups else ()

    return Identity(
        username=username,
        email=email or None,
        full_name=full_name or None,
        groups=groups,
        is_admin=admin == "true",
        timestamp=timestamp,
    )


def sign_identity_headers(
    secret: Secret,
    username: str,
    *,
    is_admin: bool = False,
    email: Optional[str] = None,
    full_name: Optional[str] = None,
    groups: Sequence[str] = (),
    timestamp: Optional[int] = None,
) -> dict:
    """Produce the seven headers as the gateway sends them (for tests and tools).

    Empty email / full name are sent as empty headers, as the gateway does.
    """
    if isinstance(groups, str):
        raise TypeError("groups must be a sequence of strings, not a string")
    if timestamp is None:
        timestamp = int(time.time())
    values = {
        H_USER: encode_component(username),
        H_ADMIN: "true" if is_admin else "false",
        H_EMAIL: encode_component(email or ""),
        H_FULL_NAME: encode_component(full_name or ""),
        H_GROUPS: ",".join(encode_component(g) for g in groups),
        H_TIMESTAMP: str(int(timestamp)),
    }
    canonical = canonical_string(
        values[H_TIMESTAMP],
        values[H_USER],
        values[H_ADMIN],
        values[H_EMAIL],
        values[H_FULL_NAME],
        values[H_GROUPS],
    )
    values[H_SIGNATURE] = compute_signature(secret, canonical)
    return values


# --------------------------------------------------------------------------- CLI


class _UsageError(Exception):
    pass


def _read_secret(args: argparse.Namespace) -> str:
    if args.secret_env:
        secret = os.environ.get(args.secret_env, "")
        if not secret:
            raise _UsageError(f"environment variable {args.secret_env} is unset or empty")
        return secret
    try:
        with open(args.secret_file, "r", encoding="utf-8") as fh:
            secret = fh.read()
    except OSError as err:
        raise _UsageError(f"cannot read secret file: {err}") from None
    if secret.endswith("\n"):
        secret = secret[:-1]
        if secret.endswith("\r"):
            secret = secret[:-1]
    if not secret:
        raise _UsageError(f"secret file {args.secret_file} is empty")
    return secret


def _read_json_object(stream: Any) -> dict:
    raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _UsageError("stdin is not UTF-8") from None
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise _UsageError(f"stdin is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise _UsageError("stdin must be a JSON object")
    return data


def _write_json(stream: Any, obj: Any) -> None:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
    # Write bytes so the output is UTF-8 whatever the locale of the caller.
    if hasattr(stream, "buffer"):
        stream.buffer.write(text.encode("utf-8"))
        stream.buffer.flush()
    else:
        stream.write(text)
        stream.flush()


def _cli_verify(args: argparse.Namespace, secret: str, stdin: Any, stdout: Any, stderr: Any) -> int:
    data = _read_json_object(stdin)
    for name, value in data.items():
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise _UsageError(f"header {name!r} must be a string or a list of strings")
    try:
        ident = verify_identity_headers(data, secret, max_skew=args.max_skew, now=args.now)
    except AuthgateVerificationError as err:
        stderr.write(f"{err.reason}: {err.message}\n")
        stderr.flush()
        return 1
    _write_json(stdout, ident.to_dict())
    return 0


def _cli_sign(args: argparse.Namespace, secret: str, stdin: Any, stdout: Any) -> int:
    data = _read_json_object(stdin)
    username = data.get("username")
    if not isinstance(username, str) or not username:
        raise _UsageError("'username' must be a non-empty string")
    is_admin = data.get("is_admin", False)
    if not isinstance(is_admin, bool):
        raise _UsageError("'is_admin' must be a boolean")
    for field in ("email", "full_name"):
        if data.get(field) is not None and not isinstance(data[field], str):
            raise _UsageError(f"'{field}' must be a string or null")
    groups = data.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise _UsageError("'groups' must be a list of strings")
    timestamp = data.get("timestamp")
    if timestamp is None and args.now is not None:
        timestamp = int(args.now)
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int)):
        raise _UsageError("'timestamp' must be an integer")
    try:
        headers = sign_identity_headers(
            secret,
            username,
            is_admin=is_admin,
            email=data.get("email"),
            full_name=data.get("full_name"),
            groups=groups,
            timestamp=timestamp,
        )
    except UnicodeEncodeError:
        raise _UsageError("values must be valid Unicode text (no lone surrogates)") from None
    _write_json(stdout, headers)
    return 0


def main(argv: Optional[Sequence[str]] = None, stdin: Any = None, stdout: Any = None, stderr: Any = None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="authgate_verify.py",
        description="Verify (default) or produce (--sign) authgate identity headers. "
        "Reads a JSON object on stdin. Exit 0: JSON on stdout; 1: verification "
        "failed, '<reason>: <message>' on stderr; 2: usage or input error.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--secret-env", metavar="NAME", help="environment variable holding the secret")
    source.add_argument("--secret-file", metavar="PATH", help="file holding the secret")
    parser.add_argument("--max-skew", type=int, default=DEFAULT_MAX_SKEW, metavar="SECONDS")
    parser.add_argument("--now", type=float, default=None, metavar="UNIX", help="clock override (tests)")
    parser.add_argument("--sign", action="store_true", help="sign an identity instead of verifying headers")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        secret = _read_secret(args)
        if args.sign:
            return _cli_sign(args, secret, stdin, stdout)
        return _cli_verify(args, secret, stdin, stdout, stderr)
    except _UsageError as err:
        stderr.write(f"usage_error: {err}\n")
        stderr.flush()
        return 2


if __name__ == "__main__":
    sys.exit(main())
