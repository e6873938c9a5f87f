"""The Snakemake profiles under pipelines/profiles/ parse the way Snakemake 9 itself reads them
(its own profile parser and argument parser, no Snakefile needed), use only options Snakemake
knows, and ask for what the cluster runs need: Apptainer with --nv, GPUs on the training rules,
partition and account from environment variables."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml
from snakemake.cli import get_argument_parser
from snakemake.profiles import ProfileConfigFileParser
from snakemake.resources import Resource

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "pipelines" / "profiles"
NAMES = ("local", "slurm", "tpu")
# The workflow's rule names that profiles key resources by (pipelines/rules/*.smk).
REPORT_RULES = ("results_table", "architecture_table", "fig10", "parity", "summary")
RULES = {"train_torch", "train_jax", "data", *REPORT_RULES}
TRAIN = ("train_torch", "train_jax")
SLURM_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None


def raw(name: str) -> dict:
    """The profile as Snakemake's ProfileConfigFileParser turns it into CLI arguments."""
    path = PROFILES / name / "config.yaml"
    with path.open() as f:
        return dict(ProfileConfigFileParser().parse(f))


def parse(name: str, tmp_path: Path):
    """argparse namespace of `snakemake --profile pipelines/profiles/<name>`. Without the SLURM
    executor plugin installed, `executor: slurm` is not a valid choice for `--executor`: the
    profile is then parsed from a copy without that one key (checked separately)."""
    profile = PROFILES / name
    if "executor" in raw(name) and not SLURM_PLUGIN:
        copy = tmp_path / name
        shutil.copytree(profile, copy)
        config = yaml.safe_load((copy / "config.yaml").read_text())
        del config["executor"]
        (copy / "config.yaml").write_text(yaml.safe_dump(config))
        profile = copy
    try:
        return get_argument_parser(profiles=[str(profile)]).parse_args([])
    except SystemExit as e:  # argparse reports unknown keys / bad values by exiting
        pytest.fail(f"snakemake rejects profile {name} (exit {e.code}); see stderr")


def value(resource: Resource):
    """A resource's value as Snakemake evaluates it for a job (env vars expanded)."""
    if resource.is_evaluable():
        return Resource.cli_evaluator(
            resource.name, resource.raw, wildcards=None, input=None, attempt=1, async_run=None
        )
    return resource.value


@pytest.mark.parametrize("name", NAMES)
def test_profile_is_yaml_with_known_keys(name):
    config = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
    assert isinstance(config, dict) and config
    options = set(get_argument_parser()._option_string_actions)
    unknown = sorted(k for k in raw(name) if f"--{k}" not in options)
    assert not unknown, f"profile {name}: not Snakemake options: {unknown}"


@pytest.mark.parametrize("name", NAMES)
def test_profile_parses_with_snakemake_cli(name, tmp_path):
    args = parse(name, tmp_path)
    assert {m.name for m in args.software_deployment_method} == {"APPTAINER"}
    assert args.rerun_incomplete and args.keep_going
    assert set(args.set_resources) <= RULES, (
        f"unknown rule names: {set(args.set_resources) - RULES}"
    )


def test_local_profile_counts_gpus(tmp_path):
    args = parse("local", tmp_path)
    assert args.apptainer_args == "--nv"
    assert value(args.resources["gpu"]) == 1
    for rule in TRAIN:
        assert value(args.set_resources[rule]["gpu"]) == 1


def test_slurm_profile(tmp_path, monkeypatch):
    assert raw("slurm")["executor"] == "slurm"
    args = parse("slurm", tmp_path)
    assert args.apptainer_args == "--nv"
    assert int(args.retries) >= 1, "preempted jobs must be resubmitted"
    assert int(args.latency_wait) >= 30, "shared file systems lag"
    # `all` is a partition name on some clusters and a Python builtin: the quotes keep it a string.
    monkeypatch.setenv("DNARCH_SLURM_PARTITION", "all")
    monkeypatch.setenv("DNARCH_SLURM_GPU_PARTITION", "gpu-h100")
    monkeypatch.setenv("DNARCH_SLURM_ACCOUNT", "proj123")
    defaults = args.default_resources
    assert value(defaults["slurm_partition"]) == "all"
    assert value(defaults["slurm_account"]) == "proj123"
    for key in ("runtime", "mem_mb", "cpus_per_task"):
        assert isinstance(value(defaults[key]), int) and value(defaults[key]) > 0
    assert set(args.set_resources) == RULES
    for rule in set(RULES) - set(TRAIN):
        res = args.set_resources[rule]
        assert {"runtime", "mem_mb", "cpus_per_task"} <= set(res), rule
    for rule in TRAIN:
        res = args.set_resources[rule]
        assert value(res["gpu"]) == 1
        assert value(res["slurm_partition"]) == "gpu-h100"
        # per dataset from the workflow's rules (tests/pipelines/test_workflow.py checks them):
        # one value here would override every dataset's
        assert not {"runtime", "mem_mb", "cpus_per_task"} & set(res), rule
    for rule in ("data", *REPORT_RULES):
        assert "gpu" not in args.set_resources[rule]


def test_tpu_profile_selects_the_tpu_image(tmp_path):
    args = parse("tpu", tmp_path)
    assert not args.apptainer_args, "--nv has no place on a TPU VM"
    (configfile,) = args.configfile
    assert yaml.safe_load(Path(configfile).read_text()) == {
        "accelerator": "tpu",
        "frameworks": ["jax"],
    }
    assert value(args.resources["tpu"]) == 1
    assert value(args.set_resources["train_jax"]["gpu"]) == 0
    assert "train_torch" not in args.set_resources


def test_smoke_evaluation_splits_hold_whole_batches(tmp_path):
    """The smoke profile's generate_size makes val and test whole batches (so JAX compiles one
    evaluation program per model). Generated here at the profile's sizes; Path-X is the
    documented exception (160 images of 128 px would take ~100 s to draw), Text's val is its
    test split."""
    from data_prep.pipeline import prepare
    from pipelines.settings import load_profile

    hyper = load_profile("smoke", None)["hyper"]
    checked = []
    for name, hp in hyper.items():
        if name in ("pathx", "text"):
            continue
        meta = prepare(
            name, "generate", tmp_path / name, size=hp["generate_size"], progress=False, fast=True
        )
        for split in ("val", "test"):
            size = meta["splits"][split]["size"]
            assert size % hp["batch_size"] == 0, (name, split, size, hp["batch_size"])
        checked.append(name)
    assert len(checked) == 8
