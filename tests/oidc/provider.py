"""A private instance of the npm ``oidc-provider`` (tests/oidc/provider.mjs) on loopback.

Installed by ``scripts/node-deps`` (``npm ci`` in tests/oidc). Keys are made here, written to a
file the provider reads; :meth:`PrivateProvider.rotate` writes a new signing key (the old one
still published) and sends ``SIGHUP``: the provider signs with the new key from then on, behind
the same socket and issuer URL.

``python -m tests.oidc.provider ISSUER [CLIENT]`` prints a fresh access token from a running
instance: the OAuth refresh command a mail client runs (mutt, tests/gateway/test_token_clients.py).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.testing.ports import free_port

HERE = Path(__file__).resolve().parent
AUDIENCE = "https://mail.gateway.test/"
INTROSPECTOR = ("gateway-rs", "gateway-introspection-secret-0123456789")

# client_id -> (secret, SubjectNameID): a professional's software (LPS) minting tokens.
CLIENTS = {
    "lps-dr-alpha": ("alpha-secret-0123456789abcdef", "899700000001"),
    "lps-dr-beta": ("beta-secret-0123456789abcdef", "899700000002"),
}


def missing() -> str | None:
    """Why the provider cannot run here, or ``None``."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        return "the npm package oidc-provider is not installed (scripts/node-deps)"
    return None


def private_jwk(kid: str, alg: str = "RS256") -> dict[str, Any]:
    if alg == "ES256":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        data: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key))
    else:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key))
    data.update(kid=kid, alg=alg, use="sig")
    return data


def post(issuer: str, path: str, form: dict[str, str], basic: tuple[str, str],
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A form POST to the provider with HTTP Basic client authentication (RFC 6749 §2.3.1)."""
    auth = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
    request = urllib.request.Request(issuer + path, data=urllib.parse.urlencode(form).encode(),  # noqa: S310
                                     headers={"Authorization": f"Basic {auth}", **(headers or {})}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http on loopback)
        body = response.read()
    return json.loads(body) if body else {}


def client_credentials_token(issuer: str, client: str = "lps-dr-alpha", *, scope: str | None = "openid mail",
                             resource: str | None = None, headers: dict[str, str] | None = None) -> str:
    """An access token from the client_credentials grant (RFC 6749 §4.4) of ``client``."""
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    if resource is not None:
        form["resource"] = resource  # RFC 8707
    return str(post(issuer, "/token", form, (client, CLIENTS[client][0]), headers)["access_token"])


@dataclass
class PrivateProvider:
    issuer: str
    keys_file: Path
    process: subprocess.Popen[str]
    keys: list[dict[str, Any]] = field(default_factory=list)

    def token(self, client: str = "lps-dr-alpha", *, scope: str | None = "openid mail",
              resource: str | None = None, dpop: bool = False) -> str:
        """An access token from the client_credentials grant (RFC 6749 §4.4); with ``dpop``,
        bound to a key of the client's (RFC 9449: a sender-constrained token, not a bearer one)."""
        headers = {"DPoP": self._dpop_proof("/token")} if dpop else {}
        return client_credentials_token(self.issuer, client, scope=scope, resource=resource, headers=headers)

    def _dpop_proof(self, path: str) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        claims = {"jti": base64.urlsafe_b64encode(os.urandom(16)).decode(), "htm": "POST",
                  "htu": self.issuer + path, "iat": int(time.time())}
        return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public})

    def revoke(self, token: str, client: str = "lps-dr-alpha") -> None:
        self.post("/token/revocation", {"token": token}, (client, CLIENTS[client][0]))  # RFC 7009

    def post(self, path: str, form: dict[str, str], basic: tuple[str, str],
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        return post(self.issuer, path, form, basic, headers)

    def rotate(self, alg: str = "RS256") -> str:
        """A new signing key first, the previous ones still published; returns its kid."""
        kid = f"k{len(self.keys) + 1}"
        self.keys.insert(0, private_jwk(kid, alg))
        self.keys_file.write_text(json.dumps(self.keys))
        self.process.send_signal(signal.SIGHUP)
        assert _json_line(self.process) == {"reloaded": True}
        return kid


def _json_line(process: subprocess.Popen[str]) -> dict[str, Any] | None:
    """The next JSON line provider.mjs prints (its notices are plain text); ``None`` at its end."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            value: dict[str, Any] = json.loads(line)
            return value
    return None


@contextmanager
def private_provider(tmp: Path, *, opaque: bool = False) -> Iterator[PrivateProvider]:
    keys = [private_jwk("k1")]
    keys_file = tmp / "oidc-keys.json"
    keys_file.write_text(json.dumps(keys))
    env = {
        **os.environ,
        "OIDC_KEYS_FILE": str(keys_file),
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_FORMAT": "opaque" if opaque else "jwt",
        "OIDC_CLIENTS": json.dumps({cid: {"secret": s, "subject": sub} for cid, (s, sub) in CLIENTS.items()}),
        "OIDC_INTROSPECTOR": json.dumps({"client_id": INTROSPECTOR[0], "secret": INTROSPECTOR[1]}),
        "OIDC_PORT": str(free_port()),
        "NODE_NO_WARNINGS": "1",
    }
    log = (tmp / "oidc-provider.log").open("w")
    process = subprocess.Popen(["node", str(HERE / "provider.mjs")], cwd=HERE, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=log)
    try:
        ready = _json_line(process)
        if ready is None:
            process.wait(timeout=10)
            raise RuntimeError(f"oidc-provider did not start: {(tmp / 'oidc-provider.log').read_text()}")
        yield PrivateProvider(issuer=ready["issuer"], keys_file=keys_file, process=process, keys=keys)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def main(argv: list[str]) -> int:
    """``python -m tests.oidc.provider ISSUER [CLIENT]``: print a fresh access token of
    ``CLIENT`` (default ``lps-dr-alpha``) from the running provider at ``ISSUER``; a mail
    client's OAuth refresh command (mutt's ``imap_oauth_refresh_command``)."""
    if len(argv) not in (1, 2) or argv[0].startswith("-"):
        print("usage: python -m tests.oidc.provider ISSUER [CLIENT]", file=sys.stderr)
        return 2
    print(client_credentials_token(argv[0], *argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
