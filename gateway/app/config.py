"""Loading the configuration: one TOML file plus the ``GATEWAY__<SECTION>__<KEY>`` environment,
validated into :class:`gateway.settings.Settings` before anything else happens.

Errors name the file (or environment variable), the key and what is wrong
(:class:`~gateway.settings.ConfigError`); loading has no side effects. The models themselves
are in :mod:`gateway.settings`, at the bottom of the layers, since every layer reads them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.settings import ENV_PREFIX, ConfigError, Settings


def _env_value(raw: str) -> Any:
    """Environment values are read as TOML values when they parse (numbers, booleans, lists)."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Collect ``GATEWAY__SECTION__KEY`` variables; returns (data, key -> variable name)."""
    data: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"environment {name}: expected GATEWAY__<SECTION>__<KEY>")
        section, key = parts
        data.setdefault(section, {})[key] = _env_value(raw)
        origin[f"{section}.{key}"] = name
    return data, origin


def _merge(base: dict[str, Any], extra: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            merged[section] = target = {}
        target.update(values)
    return merged


MOVED = {
    "smtp.max_connections_per_ip": "limits.mx_per_address, limits.submission_per_address and "
                                   "limits.submissions_per_address",
    "imap.max_connections": "limits.imap_connections and limits.imaps_connections",
}
"""Keys of earlier versions: the error says where their setting lives now."""


def _describe(err: ValidationError, source: str, origin: Mapping[str, str]) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"])
        where = f"environment {origin[key]}" if key in origin else source
        msg = item["msg"]
        if item["type"] == "extra_forbidden" and key in MOVED:
            msg = f"replaced by {MOVED[key]} (see config/README.md)"
        elif item["type"] == "extra_forbidden":
            msg = "unknown key (see config/README.md for the valid keys)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        lines.append(f"{where}: {key}: {msg}")
    return "\n".join(lines)


def load_settings(
    path: Path | None, *, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Settings:
    """Read and validate the configuration; raises :class:`ConfigError` naming file and key."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc.__class__.__name__}") from None
        base_dir = base_dir or path.resolve().parent
    return validate_settings(data, source, base_dir or Path.cwd(), environ=env)


def validate_settings(data: dict[str, Any], source: str, base_dir: Path, *,
                      environ: Mapping[str, str] | None = None) -> Settings:
    """Parsed TOML plus the ``GATEWAY__*`` overrides, validated; :class:`ConfigError` names file and key."""
    overrides, origin = env_overrides(os.environ if environ is None else environ)
    data = _merge(data, overrides)
    if "base_dir" in data:
        raise ConfigError(f"{source}: base_dir: unknown key (see config/README.md for the valid keys)")
    try:
        return Settings.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, origin)) from None


def check_files(settings: Settings, source: str) -> None:
    """Files the configuration names must exist (checked before anything is written)."""
    problems = []
    for key, value in (
        ("keys.master_key_file", settings.keys.master_key_file),
        ("tls.cert_file", settings.tls.cert_file),
        ("tls.key_file", settings.tls.key_file),
        ("tls.ca_file", settings.tls.ca_file),
    ):
        full = settings.path(value)
        if not full.is_file():
            problems.append(f"{source}: {key}: file not found: {full}")
    if problems:
        raise ConfigError("\n".join(problems))
