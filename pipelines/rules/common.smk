# Profile selection, validation and the path layout shared by every rule file.
#
# --config profile=paper|smoke|claims picks pipelines/config/<profile>.yaml (default: paper, so that
# `snakemake reports/table1.csv` is the reproduction); other --config keys override the file.
# The merged configuration is validated against pipelines/config/schema.yaml with defaults
# filled in: an unknown dataset, variant, framework or key fails here, before any job, with the
# valid values listed.
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# the repository's own modules (profile names, containers) import from its root
sys.path.insert(0, workflow.basedir)
from pipelines.settings import PROFILES, backend_of  # noqa: E402

PROFILE = config.get("profile", "paper")
if PROFILE not in PROFILES:
    raise WorkflowError(f"unknown profile {PROFILE!r}; valid profiles: {list(PROFILES)}")


configfile: str(Path(workflow.basedir) / "pipelines" / "config" / f"{PROFILE}.yaml")


validate(config, "../config/schema.yaml", set_default=True)

# Jobs run `python -m ...`: make it the interpreter that runs Snakemake unless a software
# deployment method (conda, apptainer) provides its own.
envvars:
    "PATH",


os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

ENV = "../../environment.yml"

# Apptainer images (containers/images.py). Used only with --sdm apptainer (the cluster
# profiles); a plain run ignores `container:`. Build them first: `snakemake --cores 1 images`.
from containers.images import image_for, sif_path  # noqa: E402

IMAGE_CPU = sif_path("cpu")


if config["accelerator"] == "tpu" and "torch" in config["frameworks"]:
    raise WorkflowError(
        "accelerator=tpu runs JAX only (no PyTorch TPU image); set frameworks: [jax] "
        "(pipelines/profiles/tpu/accelerator.yaml does)"
    )


def train_image(framework):
    if config["accelerator"] == "cpu":
        return IMAGE_CPU
    return sif_path(image_for(framework, config["accelerator"]))

PATHS = config["paths"]
# top-level directories each profile owns; a profile never writes into another's
PROFILE_DIRS = {"paper": ("reports", "results", "data"), "smoke": ("smoke",), "claims": ("claims",)}
if PROFILE != "paper":
    for key, where in PATHS.items():
        top = Path(where).parts[0] if Path(where).parts else ""
        for other, tops in PROFILE_DIRS.items():
            if other != PROFILE and top in tops:
                raise WorkflowError(
                    f"profile {PROFILE!r}: paths.{key}={where!r} lies in a {other}-profile "
                    f"directory ({top}/); {PROFILE} outputs must never land where {other} "
                    "outputs go"
                )


def foreign_runs(runs_dir):
    """result.json files under `runs_dir` written by another profile (checked before any job:
    a run directory is never shared between profiles)."""
    bad = []
    for f in sorted(Path(runs_dir).glob("*/*/*/seed*/result.json")):
        try:
            import json

            other = json.loads(f.read_text()).get("profile")
        except (OSError, ValueError):
            continue
        if other != PROFILE:
            bad.append(f"{f} ({other})")
    return bad


_foreign = foreign_runs(PATHS["runs"])
if _foreign:
    raise WorkflowError(
        f"profile {PROFILE!r}: paths.runs={PATHS['runs']!r} holds runs of another profile: "
        f"{_foreign[:3]}{' ...' if len(_foreign) > 3 else ''}; point paths.runs elsewhere or "
        "remove them"
    )
# JAX's persistent compilation cache for the training jobs: a rerun of the smoke
# workflow (a failed job, a new target) reuses the XLA programs compiled before. It lives with
# the profile's outputs (smoke/cache/jax: never committed, removed with them); the paper
# profile leaves JAX's default (no cache) alone. An existing JAX_COMPILATION_CACHE_DIR wins.
if PROFILE != "paper":
    os.environ.setdefault(
        "JAX_COMPILATION_CACHE_DIR",
        str(Path(PATHS["runs"]).parent.resolve() / "cache" / "jax"),
    )
missing = sorted(set(config["datasets"]) - set(config["hyper"]))
if missing:
    raise WorkflowError(
        f"profile {PROFILE!r}: datasets {missing} have no hyperparameters under `hyper`; "
        f"defined: {sorted(config['hyper'])}"
    )

DATASETS = config["datasets"]
VARIANTS = config["variants"]
FRAMEWORKS = config["frameworks"]
SEEDS = config["seeds"]
CLAIM_IDS = config["claims"]["ids"]
if PROFILE == "claims":
    from reports.claims import ClaimsError, check_request  # noqa: E402

    try:
        check_request(CLAIM_IDS, VARIANTS, FRAMEWORKS, config["claims"]["virtual_variants"])
    except ClaimsError as e:
        raise WorkflowError(f"profile 'claims': {e}") from None


# The training CLI reads its numbers from the profile file. When --config overrides change
# the configuration, the merged configuration goes to the CLI as a file (a hand-started run
# and a workflow run still use the same numbers); without overrides the shipped file is used.
import yaml  # noqa: E402

_shipped = yaml.safe_load(
    (Path(workflow.basedir) / "pipelines" / "config" / f"{PROFILE}.yaml").read_text()
)
validate(_shipped, "../config/schema.yaml", set_default=True)
EFFECTIVE_CONFIG = ""
if _shipped != dict(config):
    EFFECTIVE_CONFIG = f"{PATHS['logs']}/effective_config.yaml"
    _text = yaml.safe_dump(dict(config), sort_keys=True)
    _p = Path(EFFECTIVE_CONFIG)
    if not _p.exists() or _p.read_text() != _text:
        _p.parent.mkdir(parents=True, exist_ok=True)
        _p.write_text(_text)
TABLES = {
    "table1": ["listops", "text", "retrieval", "image", "pathfinder", "pathx"],
    "table2": ["darcyflow", "cosmic"],
    "table3": ["cifar10", "cifar100"],
}
ARCH_TABLES = {"table4": TABLES["table1"], "table5": TABLES["table2"] + TABLES["table3"]}
RUN = f"{PATHS['runs']}/{{dataset}}/{{variant}}/{{framework}}/seed{{seed}}"


wildcard_constraints:
    dataset="|".join(DATASETS),
    variant="|".join(VARIANTS),
    framework="|".join(FRAMEWORKS),
    seed=r"\d+",
    table="table[1-3]",
    arch="table[45]",


def runs(datasets, variants=None, frameworks=None, name="result.json"):
    """Every run file of the configured grid restricted to `datasets` (torch_virtual: only the
    variants in claims.virtual_variants)."""
    out = []
    for fw in frameworks or FRAMEWORKS:
        vs = variants or VARIANTS
        if fw == "torch_virtual":
            vs = [v for v in vs if v in config["claims"]["virtual_variants"]]
        out += expand(
            f"{RUN}/{name}",
            dataset=[d for d in datasets if d in DATASETS],
            variant=vs,
            framework=[fw],
            seed=SEEDS,
        )
    return out


def report_path(name):
    return f"{PATHS['reports']}/{name}"


def all_reports():
    if PROFILE == "claims":
        out = [report_path(f"{t}.csv") for t in TABLES if set(TABLES[t]) & set(DATASETS)]
        out += [
            report_path(f"{t}.csv") for t in ARCH_TABLES if set(ARCH_TABLES[t]) & set(DATASETS)
        ]
        return out + [report_path(n) for n in ("claims.csv", "report.md", "report.html")]
    out = [report_path(f"{t}.csv") for t in TABLES if set(TABLES[t]) & set(DATASETS)]
    out += [report_path(f"{t}.csv") for t in ARCH_TABLES if set(ARCH_TABLES[t]) & set(DATASETS)]
    out += [report_path("fig10.png"), report_path("fig10.pdf"), report_path("parity.csv")]
    out += [report_path("summary.md"), report_path("summary.html")]
    return out


# ---- data rule helpers ----------------------------------------------------------------------
# ListOps, Retrieval, Pathfinder and Path-X read one 8.2 GB archive: the lra_extract rule
# decompresses it once into a shared cache the four data jobs reuse (unless a dataset has its
# own data_files / data_urls). config data_files.lra / data_urls.lra: the archive or a mirror.
LRA_SHARED = ("listops", "retrieval", "pathfinder", "pathx")
LRA_CACHE = f"{PATHS['data']}/lra"


def uses_lra_cache(d):
    return (
        config["data_source"] == "download"
        and d in LRA_SHARED
        and not config["data_files"].get(d)
        and not config["data_urls"].get(d)
    )


def data_inputs(wildcards):
    return [f"{LRA_CACHE}/manifest.json"] if uses_lra_cache(wildcards.dataset) else []


def lra_args(wildcards):
    args = []
    for f in config["data_files"].get("lra", []):
        args += ["--file", f]
    for u in config["data_urls"].get("lra", []):
        args += ["--url", u]
    return shlex.join(args)


def data_args(wildcards):
    d = wildcards.dataset
    args = ["--source", config["data_source"]]
    if uses_lra_cache(d):
        args += ["--file", f"{LRA_CACHE}/raw/lra_extracted"]
    if config["data_source"] == "generate":
        size = config["hyper"][d]["generate_size"]
        if size is not None:
            args += ["--size", str(size)]
        for k, v in sorted(config["hyper"][d]["generate_options"].items()):
            args += ["--option", f"{k}={v}"]
        if config["generate_fast"]:
            args += ["--fast"]  # quick generators (DarcyFlow at 85 x 85); meta.json says so
    for f in config["data_files"].get(d, []):
        args += ["--file", f]
    for u in config["data_urls"].get(d, []):
        args += ["--url", u]
    return shlex.join(args)


def data_hint(wildcards):
    d = wildcards.dataset
    if config["data_source"] == "generate":
        return f"offline generator failed for {d}"
    hint = (
        f"download of {d} failed. Retry only this job with `snakemake --cores 1 "
        f"{PATHS['data']}/{d}/meta.json`; or give a local copy / mirror: "
        f"--config 'data_files={{{d}: [PATH, ...]}}' or 'data_urls={{{d}: [URL, ...]}}' "
        f"(same as python -m data_prep {d} --source download --file PATH / --url URL)"
    )
    if d in ("darcyflow", "cosmic"):
        hint += (
            f". {d}: the registry's mirrors (PINO bucket / Zenodo 4295902, then NAS-Bench-360's "
            "old S3) are tried in order, see the log; otherwise fetch the files by hand "
            "(NAS-Bench-360's Google Drive folder) and pass them with data_files"
        )
    return hint
