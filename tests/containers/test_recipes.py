"""The Apptainer recipes follow the project's pins, with no Apptainer binary: each containers/*.def
is parsed (spython, plus our own section scan since spython is lenient), must be the rendering of
`python -m containers.render`, pin its base by digest, copy and use requirements.lock, and name
only versions equal to pyproject.toml's. The checker is also run on broken copies to show that
it fails on each kind of drift."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from spython.main.parse.parsers import SingularityParser

from containers import images, render
from containers.images import IMAGES, PREFIX, ROOT, Image, normalize

REQUIRED_SECTIONS = (
    "arguments",
    "files",
    "post",
    "environment",
    "runscript",
    "test",
    "labels",
    "help",
)
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/\-]*:[A-Za-z0-9._\-]+@sha256:[0-9a-f]{64}$")
# Every `name==version` / `name[extra]==version` the recipe mentions, anywhere.
PIN_IN_TEXT = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)(\[[^\]]*\])?==([A-Za-z0-9_.+\-!]+)")
PIN_LABEL = re.compile(r"^dnarch\.pin\.(\S+) (\S+)$")

logging.getLogger("spython").setLevel(logging.ERROR)


def sections(text: str) -> dict[str, list[str]]:
    """%section -> its non-empty lines (stripped); the header is under ''."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith("%"):
            current = line[1:].split()[0].lower()
            out.setdefault(current, [])
        elif line.strip() and not line.lstrip().startswith("#"):
            out[current].append(line.strip())
    return out


def recipe_errors(path: Path, image: Image) -> list[str]:
    """Everything wrong with the recipe at `path` for `image`; [] when it is right."""
    text = path.read_text()
    errors = []
    secs = sections(text)
    header = secs[""]
    if not header or header[0].lower() != "bootstrap: docker":
        errors.append(f"first header line must be 'Bootstrap: docker', got {header[:1]}")
    errors += [f"missing section %{s}" for s in REQUIRED_SECTIONS if s not in secs]

    layer = SingularityParser(str(path)).recipe["spython-base"]
    base = layer.fromHeader or ""
    if not DIGEST_REF.match(base):
        errors.append(f"base image {base!r} is not pinned by digest (name:tag@sha256:<64 hex>)")
    elif base != images.BASE_IMAGE.lower():
        errors.append(f"base image {base!r} != containers.images.BASE_IMAGE")

    files = {tuple(f.split()) for f in layer.files}
    for src in ("requirements.lock", "pyproject.toml", "containers/selftest.py"):
        if (src, f"{PREFIX}/{src}") not in files:
            errors.append(f"%files does not copy {src} to {PREFIX}/{src}")
    errors += [f"%files source {f[0]} does not exist" for f in files if not (ROOT / f[0]).exists()]

    pip = [ln for ln in layer.install if re.match(r"python3? -m pip install|pip3? install", ln)]
    for line in pip:
        cpu_torch = (
            "--no-deps" in line
            and "--index-url" in line
            and line.endswith(f"torch=={_pin('torch')}")
        )
        if "-c requirements.lock" not in line and not cpu_torch:
            errors.append(f"pip install without `-c requirements.lock`: {line}")
    if not any(PREFIX in ln and "-c requirements.lock" in ln for ln in pip):
        errors.append("the project is not installed with `-c requirements.lock`")
    has_cpu_index = any("download.pytorch.org/whl/cpu" in ln for ln in pip)
    if has_cpu_index != (image.torch_build == "cpu"):
        errors.append(
            f"torch CPU index used: {has_cpu_index}, image torch build {image.torch_build}"
        )

    pins = images.project_pins()
    mentioned = [(normalize(m[1]), m[3]) for m in PIN_IN_TEXT.finditer(text)]
    for name, version in mentioned:
        if pins.get(name) != version:
            errors.append(f"recipe pins {name}=={version}, pyproject.toml {pins.get(name)}")
    labels = dict(m.groups() for ln in layer.labels if (m := PIN_LABEL.match(ln)))
    want = images.extra_pins(image.extras)
    if labels != want:
        diff = {
            k: (labels.get(k), want.get(k))
            for k in set(labels) | set(want)
            if labels.get(k) != want.get(k)
        }
        errors.append(f"%labels dnarch.pin.* differ from pyproject (label, pyproject): {diff}")
    if f"dnarch.lock.sha256 {images.lock_sha256()}" not in layer.labels:
        errors.append("%labels dnarch.lock.sha256 is not the sha256 of requirements.lock")
    if "org.opencontainers.image.revision {{ GIT_SHA }}" not in layer.labels:
        errors.append("%labels lacks the git SHA build argument")
    if not any(a.startswith("GIT_SHA=") for a in secs.get("arguments", [])):
        errors.append("%arguments gives GIT_SHA no default")

    test = " ".join(secs.get("test", []))
    if f"containers.selftest --image {image.name} --device cpu" not in test:
        errors.append("%test does not run the CPU self-test of this image")
    if image.accelerator == "cpu" and "pipelines.parity --variants ccnn" not in test:
        errors.append("%test of the CPU image does not run the parity check")
    return errors


def _pin(name: str) -> str:
    return images.project_pins()[name]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_recipe_is_valid(name):
    image = IMAGES[name]
    assert recipe_errors(ROOT / image.def_path, image) == []


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_committed_recipe_equals_rendering(name):
    image = IMAGES[name]
    assert (ROOT / image.def_path).read_text() == render.render(image), (
        f"{image.def_path} is stale: run `python -m containers.render` and commit"
    )


def test_every_def_file_is_an_image():
    on_disk = {p.stem for p in (ROOT / "containers").glob("*.def")}
    assert on_disk == set(IMAGES)


def test_frameworks_are_in_separate_gpu_images():
    for image in IMAGES.values():
        if image.accelerator in ("cuda", "tpu"):
            assert len(image.frameworks) == 1, f"{image.name}: torch and jax CUDA builds conflict"
    assert IMAGES["cpu"].frameworks == ("torch", "jax")


def test_plugins_follow_the_jax_pin():
    jax = _pin("jax")
    assert (
        f'"jax[{images.JAX_CUDA_EXTRA}]=={jax}"' in (ROOT / "containers/jax-cuda.def").read_text()
    )
    assert f'"jax[tpu]=={jax}"' in (ROOT / "containers/jax-tpu.def").read_text()


def test_image_paths_and_lookup():
    assert images.def_path("torch-cuda") == "containers/torch-cuda.def"
    assert images.sif_path("jax-tpu") == "containers/jax-tpu.sif"
    assert images.image_for("torch") == "torch-cuda"
    assert images.image_for("jax") == "jax-cuda"
    assert images.image_for("jax", "tpu") == "jax-tpu"
    with pytest.raises(KeyError, match="valid"):
        images.sif_path("torch-rocm")
    with pytest.raises(ValueError, match="valid"):
        images.image_for("torch", "tpu")


BREAKAGES = {
    "tag only": (lambda t: re.sub(r"@sha256:[0-9a-f]{64}", "", t), "not pinned by digest"),
    "other digest": (
        lambda t: re.sub(r"(@sha256:)[0-9a-f]{64}", r"\g<1>" + "0" * 64, t, count=1),
        "BASE_IMAGE",
    ),
    "bumped pin": (
        lambda t: t.replace("dnarch.pin.numpy 2.4.6", "dnarch.pin.numpy 2.4.7"),
        "dnarch.pin",
    ),
    "bumped plugin": (
        lambda t: t.replace('"jax[cuda12]==0.10.2"', '"jax[cuda12]==0.10.3"'),
        "jax==0.10.3",
    ),
    "unlocked install": (
        lambda t: t.replace("-c requirements.lock ", ""),
        "without `-c requirements.lock`",
    ),
    "lock not copied": (
        lambda t: t.replace("    requirements.lock /opt", "    # /opt"),
        "copy requirements.lock",
    ),
    "no %test": (lambda t: t.replace("%test", "%notest"), "missing section %test"),
    "no %help": (lambda t: t.replace("%help", "%nohelp"), "missing section %help"),
    "stale lock hash": (lambda t: re.sub(r"(dnarch.lock.sha256 )\w+", r"\g<1>abc", t), "sha256"),
    "no git sha": (lambda t: t.replace("{{ GIT_SHA }}", "unknown"), "git SHA"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checker_catches_drift(breakage, tmp_path):
    image = IMAGES["jax-cuda"]
    mutate, expected = BREAKAGES[breakage]
    text = (ROOT / image.def_path).read_text()
    broken = mutate(text)
    assert broken != text, "the breakage did not apply"
    path = tmp_path / "broken.def"
    path.write_text(broken)
    errors = recipe_errors(path, image)
    assert any(expected in e for e in errors), errors


def test_render_refuses_a_lock_that_disagrees_with_pyproject(tmp_path):
    for f in ("pyproject.toml", "requirements.lock"):
        (tmp_path / f).write_text((ROOT / f).read_text())
    lock = tmp_path / "requirements.lock"
    lock.write_text(lock.read_text().replace("jax==0.10.2", "jax==0.10.1"))
    with pytest.raises(SystemExit, match="jax"):
        render.render(IMAGES["jax-cuda"], tmp_path)
