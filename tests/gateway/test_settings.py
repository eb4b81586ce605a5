"""Configuration: defaults, environment overrides, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app.config import load_settings
from gateway.settings import ConfigError, OidcSettings

SUBSECTIONS = {"auth": {"oidc": OidcSettings}}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_dev_ports() -> None:
    s = load_settings(None, environ={})
    assert [s.listen.address(n)[1] for n in ("mx", "submission", "submissions", "imap", "imaps", "http")] == [
        2525, 2587, 2465, 1143, 1993, 8080]
    assert s.listen.address("mx")[0] == "127.0.0.1"


def test_example_config_is_valid_and_complete() -> None:
    root = Path(__file__).resolve().parents[2]
    example = root / "config" / "gateway.example.toml"
    settings = load_settings(example, environ={})
    readme = (root / "config" / "README.md").read_text(encoding="utf-8")
    text = example.read_text(encoding="utf-8")
    for section, model in settings:
        if section == "base_dir":
            continue
        for key in type(model).model_fields:
            if key in SUBSECTIONS.get(section, {}):  # an optional table of its own, [section.key]
                assert f"\n# [{section}.{key}]" in text, f"[{section}.{key}] missing from the example"
                for sub in SUBSECTIONS[section][key].model_fields:
                    assert f"`{section}.{key}.{sub}`" in readme, f"{section}.{key}.{sub} undocumented"
                    assert f"\n# {sub} = " in text, f"{section}.{key}.{sub} missing from the example"
                continue
            assert f"`{section}.{key}`" in readme, f"{section}.{key} undocumented in config/README.md"
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{section}.{key} missing from the example"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[listen]\nmx = "127.0.0.1:2600"\n[storage]\npool_size = 4\n')
    s = load_settings(path, environ={"GATEWAY__LISTEN__MX": "127.0.0.1:3525", "GATEWAY__STORAGE__POOL_SIZE": "7",
                                     "GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS": "true"})
    assert s.listen.mx == "127.0.0.1:3525" and s.storage.pool_size == 7 and s.tls.allow_auth_without_tls


def test_ipv6_listen_address() -> None:
    s = load_settings(None, environ={"GATEWAY__LISTEN__IMAP": "[::1]:1143"})
    assert s.listen.address("imap") == ("::1", 1143)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[listen]\nmx = "127.0.0.1:99999"\n', "listen.mx: port 99999 is out of range"),
        ('[listen]\nmx = "127.0.0.1"\n', "listen.mx: expected host:port"),
        ('[listen]\nsmtp = "127.0.0.1:25"\n', "listen.smtp: unknown key"),
        ('[nonsense]\nx = 1\n', "nonsense: unknown key"),
        ('[storage]\npool_size = 0\n', "storage.pool_size:"),
        ('[storage]\nurl = "mysql://x"\n', "storage.url: must be a sqlite"),
        ('[tls]\nmin_version = "1.0"\n', "tls.min_version:"),
        ("[listen\n", "not valid TOML"),
        ('[smtp]\nmax_connections_per_ip = 20\n', "smtp.max_connections_per_ip: replaced by limits.mx_per_address"),
        ('[imap]\nmax_connections = 20\n', "imap.max_connections: replaced by limits.imap_connections"),
        ('[auth.oidc]\nissuer = "http://idp.example/"\naudience = "a"\nrequired_scope = "s"\n',
         "auth.oidc.issuer: 'http://idp.example/' must use https:// (http:// only on a loopback"),
        ('[auth.oidc]\nissuer = "ftp://idp.example/"\naudience = "a"\nrequired_scope = "s"\n',
         "must be an https:// URL"),
        ('[auth.oidc]\nissuer = "https://idp.example/"\naudience = "a"\n', "auth.oidc.required_scope:"),
        ('[auth.oidc]\nissuer = "https://idp.example/"\naudience = "a"\nrequired_scope = "s"\n'
         'introspection_url = "https://idp.example/introspect"\n', "needs client_id and client_secret_file"),
        ('[auth.oidc]\nissuer = "https://idp.example/"\naudience = "a"\nrequired_scope = "s"\n'
         'introspection_url = "http://10.0.0.1/introspect"\n', "auth.oidc.introspection_url:"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(path) in str(err.value) and expected in str(err.value)


def test_environment_error_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"environment GATEWAY__LISTEN__HTTP: listen.http: port"):
        load_settings(None, environ={"GATEWAY__LISTEN__HTTP": "127.0.0.1:0"})
    with pytest.raises(ConfigError, match="GATEWAY__<SECTION>__<KEY>"):
        load_settings(None, environ={"GATEWAY__LISTEN": "x"})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_bare_line_endings_per_listener(tmp_path: Path) -> None:
    """Issue 17 item 7: the MX refuses a bare LF, submission normalises it, each can be set."""
    s = load_settings(None, environ={})
    assert [s.smtp.bare_line_endings(n) for n in ("mx", "submission", "submissions")] == [
        "reject", "normalize", "normalize"]
    s = load_settings(_write(tmp_path, '[smtp]\nmx_bare_line_endings = "normalize"\n'
                                       'submission_bare_line_endings = "reject"\n'), environ={})
    assert [s.smtp.bare_line_endings(n) for n in ("mx", "submission", "submissions")] == [
        "normalize", "reject", "reject"]
    with pytest.raises(ConfigError, match="submission_bare_line_endings"):
        load_settings(_write(tmp_path, '[smtp]\nsubmission_bare_line_endings = "accept"\n'), environ={})


def test_oidc_issuer_https_or_loopback(tmp_path: Path) -> None:
    """Issue 19: ``[auth.oidc]`` issuers are https://, or http:// on a loopback address only."""
    assert load_settings(None, environ={}).auth.oidc is None
    for issuer in ("https://auth.esante.gouv.fr/auth/realms/esante-wallet", "http://127.0.0.1:8443",
                   "http://[::1]:9000/", "http://localhost:8080/realms/test"):
        s = load_settings(_write(tmp_path, f'[auth.oidc]\nissuer = "{issuer}"\naudience = "https://mail.test/"\n'
                                           'identity_claim = "SubjectNameID"\nrequired_scope = "scope_all"\n'),
                          environ={})
        assert s.auth.oidc is not None and s.auth.oidc.issuer == issuer
        assert s.auth.oidc.identity_claim == "SubjectNameID" and s.auth.oidc.leeway_seconds == 30
    for issuer in ("http://127.0.0.1.example/", "http://192.0.2.1/", "https:///nohost"):
        with pytest.raises(ConfigError, match=r"auth\.oidc\.issuer"):
            load_settings(_write(tmp_path, f'[auth.oidc]\nissuer = "{issuer}"\naudience = "a"\n'
                                           'required_scope = "s"\n'), environ={})
