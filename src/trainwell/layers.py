"""Raw config layers, before any check: `--set` texts parsed, dotted overrides and sections merged,
YAML config files read. Standard library, PyYAML and trainwell's leaf modules only, so the
command line can parse its arguments without importing torch (compose.py builds the config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import safeyaml
from .errors import ConfigError, shown, shown_name, shown_path
from .paths import path_problem
from .sections import SECTIONS


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's sections, or a one-line ConfigError when it holds anything but a mapping."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {shown_path(path)} must hold a mapping of sections ({', '.join(SECTIONS)})")
    return raw


def parse_override(text: str) -> tuple[str, Any]:
    """`train.max_epochs=50` → ("train.max_epochs", 50); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"--set {shown(text)} is not allowed: SECTION.FIELD=VALUE, e.g. train.max_epochs=50")
    try:
        value = safeyaml.load(raw, f"--set {shown_name(key.strip())}") if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the raw config dict with dotted-key overrides applied (checked later)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for key, value in overrides.items():
        if key == "name":
            out["name"] = value
            continue
        section, _, fieldname = key.partition(".")
        if section not in SECTIONS or not fieldname or "." in fieldname:
            raise ConfigError(
                f"--set {shown_name(key)}: unknown field; use SECTION.FIELD with SECTION one of {', '.join(SECTIONS)}"
            )
        out.setdefault(section, {})
        if not isinstance(out[section], dict):
            raise ConfigError(f"config section {section!r} must be a mapping of fields")
        out[section][fieldname] = value
    return out


def read_yaml(path: str | Path) -> Any:
    """A YAML file's document, within safeyaml's size and alias budget, or a one-line ConfigError."""
    problem = path_problem(str(path))
    if problem:
        raise ConfigError(f"config file {shown_path(path)} {problem}")
    p = Path(path)
    where = f"config file {shown_path(p)}"
    if not p.is_file():
        raise ConfigError(f"{where} does not exist; give a YAML file")
    try:
        if p.stat().st_size > 4 * safeyaml.MAX_FILE_BYTES:  # refuse before reading a huge file
            raise ConfigError(
                f"{where} is {p.stat().st_size:,} bytes long; the limit is {safeyaml.MAX_FILE_BYTES:,} characters"
            )
        return safeyaml.load(p.read_text(encoding="utf-8"), where)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where} is not valid YAML: {first[:100]}") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror}") from None


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Section-wise merge of two raw config dicts; `top` wins field by field."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
