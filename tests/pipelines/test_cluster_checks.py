"""The SLURM checks of pipelines/cluster_checks.py (wired in pipelines/rules/cluster.smk), without
a SLURM: unset DNARCH_SLURM_* variables and requests no node can hold are refused before any
job is submitted, memory kills are named with their rule and mem_mb, and a `CANCELLED by <uid>`
state reaches the executor plugin as CANCELLED. The real cluster run is `make test-cluster`."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines import cluster_checks as cc

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
VARS = {"DNARCH_SLURM_ACCOUNT", "DNARCH_SLURM_PARTITION", "DNARCH_SLURM_GPU_PARTITION"}
SINFO = """\
n1|cpu*|4000|2|(null)
n1|gpu|4000|2|(null)
g1|gpu|256000|32|gpu:a100:4(S:0-1)
"""


def test_variables_are_found_in_both_spellings():
    assert cc.variables("'$DNARCH_SLURM_ACCOUNT'") == ["DNARCH_SLURM_ACCOUNT"]
    assert cc.variables("${A}-$B_2") == ["A", "B_2"]
    assert cc.variables("'gpu'") == []


def test_unset_and_empty_variables_are_named_with_their_rules():
    raw = {
        "train_torch": {"slurm_partition": "'$GPU_PART'", "mem_mb": 4000},
        "data": {"slurm_account": "'$ACCOUNT'", "slurm_partition": "'$PART'"},
    }
    missing = cc.unset_variables(raw, {"ACCOUNT": "proj", "PART": ""})
    assert missing == {
        "PART": ["data:slurm_partition"],
        "GPU_PART": ["train_torch:slurm_partition"],
    }
    assert cc.unset_variables(raw, {"ACCOUNT": "a", "PART": "b", "GPU_PART": "c"}) == {}
    msg = cc.unset_message({"DNARCH_SLURM_ACCOUNT": ["data:slurm_account"]})
    assert "DNARCH_SLURM_ACCOUNT is not set" in msg and "before submitting any job" in msg
    assert "docs/cluster.md" in msg


def test_the_slurm_profile_needs_exactly_its_three_variables():
    from snakemake.cli import get_argument_parser

    args = get_argument_parser(profiles=[str(ROOT / "pipelines/profiles/slurm")]).parse_args([])
    raw = {"*": {k: r.raw for k, r in args.default_resources.items()}}
    raw |= {rule: {k: r.raw for k, r in res.items()} for rule, res in args.set_resources.items()}
    assert set(cc.unset_variables(raw, {})) == VARS


def test_sinfo_is_parsed_per_partition():
    parts = cc.parse_sinfo(SINFO)
    assert parts.default == "cpu"
    assert [(n.name, n.mem_mb, n.cpus, n.gpus) for n in parts.nodes["gpu"]] == [
        ("n1", 4000, 2, 0),
        ("g1", 256000, 32, 4),
    ]
    assert cc.gpu_count("gpu:2,shard:8") == 2 and cc.gpu_count("gpu") == 1
    assert cc.gpu_count("(null)") == 0


def test_requests_no_node_can_hold_are_reported():
    parts = cc.parse_sinfo(SINFO)
    ok = [
        cc.Request("train_torch", "gpu", mem_mb=64000, cpus=8, gpus=1),
        cc.Request("data", None, mem_mb=4000),  # the default partition, cpu
    ]
    assert cc.oversized(ok, parts) == []
    bad = [
        cc.Request("data", None, mem_mb=32000, cpus=8),
        cc.Request("data", None, mem_mb=32000, cpus=8),  # the same job twice: reported once
        cc.Request("parity", "cpu", mem_mb_per_cpu=3000, cpus=2),
        cc.Request("train_jax", "gpu", mem_mb=512000, gpus=8),
        cc.Request("train_torch", "gpu-h100", mem_mb=1000),
        cc.Request("summary", "cpu", gpus=1),
    ]
    problems = cc.oversized(bad, parts)
    assert problems == [
        "rule data: mem_mb=32000 exceeds the memory of every node in partition 'cpu' "
        "(largest: 4000 MB)",
        "rule data: cpus_per_task=8 exceeds the CPUs of every node in partition 'cpu' (most: 2)",
        "rule parity: mem_mb_per_cpu x cpus_per_task = 6000 exceeds the memory of every node in "
        "partition 'cpu' (largest: 4000 MB)",
        "rule train_jax: mem_mb=512000 exceeds the memory of every node in partition 'gpu' "
        "(largest: 256000 MB)",
        "rule train_jax: gpu=8 but the nodes of partition 'gpu' have at most 4 GPUs",
        "rule train_torch: partition 'gpu-h100' does not exist (partitions: cpu, gpu)",
        "rule summary: gpu=1 but the nodes of partition 'cpu' have no GPUs (no gpu GRES)",
    ]
    assert "before submitting any job" in cc.oversized_message(problems)


def test_request_reads_snakemake_resource_names():
    r = cc.request_of(
        "train_torch",
        {"slurm_partition": "gpu", "mem_mb": 64000, "cpus_per_task": 8, "gpu": 1, "runtime": 9},
    )
    assert (r.partition, r.memory, r.cpus, r.gpus) == ("gpu", 64000, 8, 1)
    r = cc.request_of("data", {"mem_mb_per_cpu": 1000, "cpus_per_task": 4, "gres": "gpu:a100:2"})
    assert (r.partition, r.memory, r.gpus) == (None, 4000, 2)


# What Snakemake 9 and snakemake-executor-plugin-slurm 2.8.0 print (trimmed to the lines read).
LOG = """\
[Mon Dec  7 05:59:11 2026]
rule train_torch:
    input: smoke/data/listops/meta.json
    jobid: 3
    wildcards: dataset=listops, seed=0
    resources: tmpdir=<TBD>, mem_mb=300, mem=300 MB, slurm_partition=gpu, cpus_per_task=1, gpu=0
Job 3 has been submitted with SLURM jobid 15 (log: /w/.snakemake/slurm_logs/15.log).
[Mon Dec  7 05:59:11 2026]
rule data:
    jobid: 4
    wildcards: dataset=text
    resources: tmpdir=<TBD>, mem_mb=1000, slurm_partition=cpu
[Mon Dec  7 05:59:26 2026]
Error in rule train_torch:
    message: SLURM-job '15' failed, SLURM status is: 'FAILED'. Reason: Unknown.For further error details see the cluster/cloud log and the log files of the involved rule(s).
    jobid: 3
    log: smoke/logs/train/listops/torch/seed0.log, /w/.snakemake/slurm_logs/15.log (check log file(s) for error details)
    external_jobid: 15
Error in rule data:
    message: SLURM-job '16' failed, SLURM status is: 'CANCELLED'. Reason: Unknown.
    jobid: 4
    log: smoke/logs/data/text.log, /w/.snakemake/slurm_logs/16.log (check log file(s) for error details)
    external_jobid: 16
Error in rule parity:
    message: SLURM-job '17' failed, SLURM status is: 'OUT_OF_MEMORY'. Reason: Unknown.
    jobid: 9
    external_jobid: 17
Exiting because a job execution failed. Look above for error messages
"""  # noqa: E501
SLURM_LOGS = {
    "/w/.snakemake/slurm_logs/15.log": "slurmstepd-vm: error: StepId=15.0 exceeded memory limit "
    "(411041792 > 314572800), being killed\nslurmstepd-vm: error: Exceeded job memory limit\n",
    "/w/.snakemake/slurm_logs/16.log": "slurmstepd: error: *** JOB 16 CANCELLED AT ... ***\n",
}


def test_memory_kills_are_named_with_rule_and_mem_mb():
    kills = cc.memory_kills(LOG, read=lambda p: SLURM_LOGS.get(p, ""))
    assert [(k.rule, k.external_jobid, k.mem_mb, k.used_mb) for k in kills] == [
        ("train_torch", "15", 300, 392),
        ("parity", "17", None, None),  # cgroup clusters: the state says it
    ]
    msg = kills[0].message()
    assert msg.startswith(
        "rule train_torch (dataset=listops, seed=0), SLURM job 15: killed by SLURM for exceeding "
        "its memory request mem_mb=300 (it reached 392 MB)."
    )
    assert "set-resources" in msg and "/w/.snakemake/slurm_logs/15.log" in msg
    # a training job's mem_mb is its dataset's (hyper.<dataset>.mem_mb): the message says where
    assert "Raise hyper.listops.mem_mb in the workflow profile" in msg
    assert "Raise mem_mb of parity in the cluster profile's set-resources" in kills[1].message()


def test_after_failure_reads_every_log_of_a_slurm_run(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(LOG.replace("/w/.snakemake/slurm_logs/15.log", str(tmp_path / "15.log")))
    (tmp_path / "15.log").write_text(SLURM_LOGS["/w/.snakemake/slurm_logs/15.log"])
    slurm = SimpleNamespace(executor_plugin=SimpleNamespace(name="slurm"))
    local = SimpleNamespace(executor_plugin=SimpleNamespace(name="local"))
    messages = cc.after_failure(slurm, [str(log)])
    assert [m.split(":")[0] for m in messages] == [
        "rule train_torch (dataset=listops, seed=0), SLURM job 15",
        "rule parity, SLURM job 17",
    ]
    assert cc.after_failure(local, [str(log)]) == []
    assert cc.after_failure(slurm, []) == []


def test_cancelled_by_a_user_reaches_the_plugin_as_cancelled():
    assert cc.normalised({"7": "CANCELLED by 0", "8": "COMPLETED", "9": ""}) == {
        "7": "CANCELLED",
        "8": "COMPLETED",
        "9": "",
    }
    assert cc.normalised(None) is None


def test_a_preempted_job_is_cancelled_once_squeue_lets_it_go(tmp_path, monkeypatch):
    over = {"1": True, "2": False}
    states = cc.normalised({"1": "PREEMPTED", "2": "PREEMPTED"}, over.__getitem__)
    assert states == {"1": "CANCELLED", "2": "PREEMPTED"}  # 2 is requeued and waits
    squeue = tmp_path / "squeue"
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for body, is_over in [
        ("echo PENDING", False),  # PreemptMode=REQUEUE: waiting to run again
        ("true", True),  # PreemptMode=CANCEL: no longer pending or running
        ("echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", True),
        ("echo 'Unable to contact slurm controller' >&2; exit 1", False),
    ]:
        squeue.write_text(f"#!/bin/sh\n{body}\n")
        squeue.chmod(0o755)
        assert cc.preempted_is_over("1") is is_over, body

    async def query_job_status(command, logger):
        return {"7": "CANCELLED by 1042", "8": "RUNNING"}, 0.01

    plugin = SimpleNamespace(query_job_status=query_job_status)
    assert cc.normalise_job_states(plugin) is True
    assert cc.normalise_job_states(plugin) is False  # wrapped once
    states, took = asyncio.run(plugin.query_job_status("sacct ...", None))
    assert states == {"7": "CANCELLED", "8": "RUNNING"} and took == 0.01
    assert cc.normalise_job_states(SimpleNamespace()) is False  # plugin not loaded


def test_the_installed_plugin_still_has_the_wrapped_query():
    """The wrapper replaces the plugin module's `query_job_status`, which `check_active_jobs`
    looks up at call time; a plugin release that renames it needs the wrapper adapted."""
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    assert asyncio.iscoroutinefunction(plugin.query_job_status)
    assert "query_job_status(" in Path(plugin.__file__).read_text()


def _workflow(jobs, name="slurm"):
    dag = SimpleNamespace(needrun_jobs=lambda: jobs)
    return SimpleNamespace(executor_plugin=SimpleNamespace(name=name), dag=dag)


def _job(rule, raw, values, local=False):
    resources = {k: SimpleNamespace(raw=v) for k, v in raw.items()}
    return SimpleNamespace(
        rule=SimpleNamespace(name=rule, resources=resources), resources=values, is_local=local
    )


def test_before_submission_refuses_unset_variables_and_oversized_jobs(monkeypatch):
    monkeypatch.setattr(cc, "normalise_job_states", lambda: True)
    monkeypatch.delenv("DNARCH_T_ACCOUNT", raising=False)
    parts = cc.parse_sinfo(SINFO)
    train = _job(
        "train_torch",
        {"slurm_account": "'$DNARCH_T_ACCOUNT'", "mem_mb": 64000},
        {"slurm_account": "$DNARCH_T_ACCOUNT", "slurm_partition": "cpu", "mem_mb": 64000},
    )
    everything = _job("all", {"slurm_account": "'$DNARCH_T_ACCOUNT'"}, {}, local=True)
    with pytest.raises(cc.ClusterCheckError, match="DNARCH_T_ACCOUNT is not set"):
        cc.before_submission(_workflow([train, everything]), parts)
    monkeypatch.setenv("DNARCH_T_ACCOUNT", "proj")
    with pytest.raises(cc.ClusterCheckError, match="mem_mb=64000 exceeds the memory"):
        cc.before_submission(_workflow([train]), parts)
    cc.before_submission(_workflow([train], name="local"), parts)  # other executors: no check
    train.resources["slurm_partition"] = "gpu"
    cc.before_submission(_workflow([train, everything]), parts)  # the A100 node holds it


# ---- through Snakemake, with stand-ins for the SLURM commands -----------------------------------


def _harness():
    spec = importlib.util.spec_from_file_location("harness", ROOT / "tests/cluster/harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_slurm(tmp_path):
    """sinfo answers with SINFO; sbatch records that it was called; the rest answer nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "sinfo": f"cat <<'EOF'\n{SINFO}EOF",
        "sbatch": f"touch {tmp_path}/sbatch-called; echo 1",
        "sacct": "true",
        "squeue": "true",
        "scontrol": "true",
        "sacctmgr": "true",
        "sshare": "true",
    }
    for name, body in scripts.items():
        p = bin_dir / name
        p.write_text(f"#!/bin/sh\n{body}\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def _submit(tmp_path, profile: dict, env: dict) -> subprocess.CompletedProcess:
    prof = _harness().write_profile(tmp_path / "profile", profile)
    run = {k: v for k, v in os.environ.items() if not k.startswith(("DNARCH_SLURM_", "SLURM_"))}
    run["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{run['PATH']}"
    run.pop("SNAKEMAKE_PROFILE", None)
    cmd = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "work")]
    cmd += ["--profile", str(prof), "--config", "profile=smoke"]
    return subprocess.run(
        cmd, env={**run, **env}, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )


needs_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None or not SNAKEMAKE.exists(),
    reason="snakemake or its SLURM executor plugin not installed",
)


@needs_plugin
def test_snakemake_refuses_an_unset_variable_before_sbatch(fake_slurm):
    env = {"DNARCH_SLURM_PARTITION": "cpu", "DNARCH_SLURM_GPU_PARTITION": "gpu"}
    p = _submit(fake_slurm, _harness().merged_profile(), env)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-3000:]
    assert "DNARCH_SLURM_ACCOUNT is not set" in out, out[-3000:]
    assert not (fake_slurm / "sbatch-called").exists()


@needs_plugin
def test_snakemake_refuses_a_request_larger_than_every_node_before_sbatch(fake_slurm):
    h = _harness()
    profile = h.merge(h.merged_profile(), {"set-resources": {"data": {"mem_mb": 32000}}})
    env = {
        "DNARCH_SLURM_ACCOUNT": "proj",
        "DNARCH_SLURM_PARTITION": "cpu",
        "DNARCH_SLURM_GPU_PARTITION": "gpu",
    }
    p = _submit(fake_slurm, profile, env)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-3000:]
    assert "rule data: mem_mb=32000 exceeds the memory of every node in partition 'cpu'" in out
    assert not (fake_slurm / "sbatch-called").exists()
