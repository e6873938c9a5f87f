"""Workflow profiles (pipelines/config/{paper,smoke,claims}.yaml) loaded and validated against
pipelines/config/schema.yaml, exactly as the Snakefile does with `snakemake.utils.validate`:
defaults filled in, unknown keys and invalid values rejected at load time with the valid
choices listed. The training CLI reads its hyperparameters from here, so a run started by hand
and one started by Snakemake use the same numbers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "config"
SCHEMA_PATH = CONFIG_DIR / "schema.yaml"
PROFILES = ("paper", "smoke", "claims")
FRAMEWORKS = ("torch", "jax", "torch_virtual")
# torch_virtual: PyTorch in virtual mode whatever the profile's torch_mode says (the claims
# profile trains it beside `torch` to compare trim with virtual, claim C5); its own run
# directory and result.json "framework" keep it apart from the `torch` runs.


def backend_of(framework: str) -> str:
    """The framework that runs `framework`: torch_virtual is PyTorch."""
    return "torch" if framework == "torch_virtual" else framework


def torch_mode_of(framework: str, config: dict) -> str:
    """The PyTorch execution mode of a run: virtual for torch_virtual, else the profile's."""
    return "virtual" if framework == "torch_virtual" else config["torch_mode"]


class SettingsError(ValueError):
    """A profile or an override is invalid; the message names the key and the valid values."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _default_filling_validator():
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def validate(config: dict) -> dict:
    """Validate `config` in place (defaults filled in) and return it."""
    validator = _default_filling_validator()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            where = "/".join(str(p) for p in e.absolute_path) or "<top level>"
            lines.append(f"  {where}: {e.message}")
        raise SettingsError("invalid workflow configuration:\n" + "\n".join(lines))
    return config


def profile_path(profile: str) -> Path:
    if profile not in PROFILES:
        raise SettingsError(f"unknown profile {profile!r}; valid profiles: {list(PROFILES)}")
    return CONFIG_DIR / f"{profile}.yaml"


def load_profile(
    profile: str, path: str | Path | None = None, overrides: dict | None = None
) -> dict:
    """The validated configuration of `profile` (from `path` if given, else the shipped
    pipelines/config/<profile>.yaml), with top-level `overrides` applied first."""
    src = Path(path) if path is not None else profile_path(profile)
    config = yaml.safe_load(Path(src).read_text()) or {}
    config.update(overrides or {})
    validate(config)
    if config["profile"] != profile:
        raise SettingsError(
            f"{src} is a {config['profile']!r} profile, but --profile {profile!r} was given"
        )
    return config


def hyper(config: dict, dataset: str) -> dict[str, Any]:
    """Table 6 row (with defaults) of `dataset` in `config`."""
    rows = config["hyper"]
    if dataset not in rows:
        raise SettingsError(
            f"profile {config['profile']!r} has no hyperparameters for dataset {dataset!r}; "
            f"it defines: {sorted(rows)}"
        )
    return rows[dataset]
