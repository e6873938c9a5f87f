"""pyproject.toml, environment.yml and requirements.lock pin the same versions."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^;\s]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines, where):
    out = {}
    for line in lines:
        m = PIN.match(line.strip())
        assert m, f"{where}: {line!r} is not an exact pin (name==version)"
        out[_norm(m.group(1))] = m.group(2)
    return out


def pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for deps in project["optional-dependencies"].values():
        lines += [d for d in deps if not d.startswith("dnarch-repro")]
    return _pins(lines, "pyproject.toml")


def environment_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins([p for p in pip if not p.startswith("-e")], "environment.yml")


def test_environment_yml_equals_pyproject():
    py, env = pyproject_pins(), environment_pins()
    drift = {k: (py.get(k), env.get(k)) for k in set(py) | set(env) if py.get(k) != env.get(k)}
    assert not drift, f"environment.yml drifted from pyproject.toml (pyproject, env): {drift}"


def test_lock_contains_every_direct_pin():
    lock = _pins(
        [ln for ln in (ROOT / "requirements.lock").read_text().splitlines() if ln.strip()],
        "requirements.lock",
    )
    drift = {k: (v, lock.get(k)) for k, v in pyproject_pins().items() if lock.get(k) != v}
    assert not drift, f"requirements.lock drifted from pyproject.toml (pyproject, lock): {drift}"


def test_python_version_agrees():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "python=3.11" in env["dependencies"] and project["requires-python"] == "==3.11.*"
