"""``gateway admin add|token|list``: TOTP provisioning printed, token shown once, clear errors."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pyotp
import pytest

from gateway.app.cli.main import main
from gateway.app.context import init_home


def run(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", io.StringIO(stdin))
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_admin_add_token_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home, hostname="mx.gateway.test", patient_domain="patients.gateway.test")
    base = ["--home", str(home), "admin"]
    code, out, _ = run([*base, "add", "Alice", "--password-stdin"], "une phrase assez longue\n")
    assert code == 0
    secret = re.search(r"secret: ([A-Z2-7]+)", out)
    assert secret and "otpauth://totp/" in out and "issuer=" in out
    assert len(pyotp.TOTP(secret.group(1)).now()) == 6
    assert run([*base, "add", "alice", "--password-stdin"], "une phrase assez longue\n")[0] == 1
    code, _, err = run([*base, "add", "bob", "--password-stdin"], "court\n")
    assert code == 1 and "too short" in err
    code, _, err = run([*base, "add", "bob smith", "--password-stdin"], "une phrase assez longue\n")
    assert code == 1 and "invalid admin name" in err
    code, out, err = run([*base, "token", "alice", "--label", "prometheus"])
    assert code == 0 and out.startswith("hmga_") and "shown once" in err
    code, _, err = run([*base, "token", "nobody"])
    assert code == 1 and "no admin named nobody" in err
    code, out, _ = run([*base, "list", "--json"])
    assert code == 0 and '"name": "alice"' in out and "password" not in out
    code, out, _ = run(["--home", str(home), "audit", "verify"])
    assert code == 0
