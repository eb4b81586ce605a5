"""The "Try it" that ``gateway serve`` prints: commands that work as printed (issue 14).

Every command names this very installation's ``gateway`` (``.venv/bin/gateway`` from the
project folder, else its full path) and the running configuration, and they follow the
README's "Trying it": a hosted domain, a professional with a password, an open patient, an
admin, a first message over submission, the web pages.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from gateway.settings import Settings, split_hostport

EXAMPLE_INS = "253072A07300443"
HOSTED = "clinic.test"
PRO = f"dr.martin@{HOSTED}"
PRO_PASSWORD = "a long passphrase"  # noqa: S105 (the example, as in the README)
ADMIN = "alice"
ADMIN_PASSWORD = "a long admin passphrase"  # noqa: S105
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 (a wildcard to replace)


def _shown(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when inside it (``.venv/bin/gateway``), else absolute; shell-quoted."""
    absolute = path if path.is_absolute() else cwd / path
    try:
        text = str(absolute.relative_to(cwd))
        text = text if "/" in text else f"./{text}"
    except ValueError:
        text = str(absolute)
    return shlex.quote(text)


def gateway_command(cwd: Path | None = None) -> str:
    """How to run this installation's ``gateway`` from ``cwd``: its console script, else ``python -m gateway``."""
    here = cwd or Path.cwd()
    python = Path(sys.executable)  # not resolved: a virtual environment's python is a symlink
    script = python.parent / "gateway"
    if script.is_file() and os.access(script, os.X_OK):
        return _shown(script, here)
    return f"{_shown(python, here)} -m gateway"


def python_command(cwd: Path | None = None) -> str:
    return _shown(Path(sys.executable), cwd or Path.cwd())


def _url(host: str, port: int, scheme: str) -> str:
    host = LOOPBACK.get(host, host)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/"


def send_one_liner(settings: Settings, python: str) -> str:
    """A first message from the example professional to the example patient: submission, STARTTLS, AUTH."""
    host, port = split_hostport(settings.listen.submission)
    host = LOOPBACK.get(host, host)
    ca = str(settings.path(settings.tls.ca_file).resolve())
    patient = f"{EXAMPLE_INS}@{settings.domains.patient_domain}"
    message = (f"From: {PRO}\\r\\nTo: {patient}\\r\\nSubject: Bonjour\\r\\n\\r\\n"
               "Votre premier message.\\r\\n")
    code = (f"import smtplib, ssl; s = smtplib.SMTP('{host}', {port}); "
            f"s.starttls(context=ssl.create_default_context(cafile='{ca}')); "
            f"s.login('{PRO}', '{PRO_PASSWORD}'); "
            f"s.sendmail('{PRO}', ['{patient}'], '{message}'); s.quit()")
    return f'{python} -c "{code}"'


def try_it(settings: Settings, config: str, cwd: Path | None = None) -> list[str]:
    here = cwd or Path.cwd()
    gw, python = gateway_command(here), python_command(here)
    config_path = Path(config) if Path(config).is_absolute() else here / config
    http_host, http_port = split_hostport(settings.listen.http)
    web = _url(http_host, http_port, "http")
    if settings.listen.https:
        web = _url(*split_hostport(settings.listen.https), "https")
    return [
        f"Try it, from {here} in another terminal:",
        f"  export GATEWAY_CONFIG={shlex.quote(str(config_path.resolve()))}",
        f"  {gw} domain hosted add {HOSTED}",
        f"  echo '{PRO_PASSWORD}' | {gw} pro add {PRO} --name 'Dr Martin' --password-stdin",
        f"  {gw} patient add {EXAMPLE_INS} --open          # prints the activation code",
        f"  echo '{ADMIN_PASSWORD}' | {gw} admin add {ADMIN} --password-stdin   # prints the TOTP secret",
        f"  {send_one_liner(settings, python)}   # a first message",
        f"  # patient web inbox: {web} (activation with the code above); admin console: {web}admin/",
        "Ctrl-C stops the gateway.",
    ]
