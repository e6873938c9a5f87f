"""Checks for SLURM runs, called from pipelines/rules/cluster.smk.

Before the first job is submitted (Snakemake's `onstart`, executor `slurm` only):

- every `$VAR` a resource of a job-to-run names (the cluster profile's DNARCH_SLURM_*) is set
  and not empty. Snakemake leaves an unset variable literal, so without this check sbatch
  rejects `-A '$DNARCH_SLURM_ACCOUNT'` job by job;
- every job fits some node of its partition (`sinfo`): mem_mb (or mem_mb_per_cpu x
  cpus_per_task), cpus_per_task and GPUs; the partition exists. Otherwise sbatch rejects each
  job on its own, or SLURM queues it forever, and that is the first sign.

After a failed run (`onerror`): jobs that SLURM killed for exceeding their memory request are
named with their rule, their mem_mb and the memory they reached. The executor plugin reports
such a job as `FAILED, Reason: Unknown` where memory is enforced by polling
(JobAcctGatherParams=OverMemoryKill), and the reason is only in the job's SLURM log.

While the run goes on, job states reach snakemake-executor-plugin-slurm 2.8.0 normalised
(`normalise_job_states`). The plugin takes every state it does not list for a running job, so
without this Snakemake would wait forever, instead of resubmitting, for
- a job someone cancelled: sacct says `CANCELLED by <uid>` -> CANCELLED;
- a job preempted under PreemptMode=CANCEL: sacct says PREEMPTED, as it does for a job
  preempted under PreemptMode=REQUEUE that waits to run again; it becomes CANCELLED once
  squeue no longer lists it as pending or running.

The functions take plain values (tests/pipelines/test_cluster_checks.py runs them without
SLURM); `before_submission` and `after_failure` read them from Snakemake's workflow object.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# `$NAME` or `${NAME}`: what os.path.expandvars (Snakemake's resource evaluation) replaces
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# sinfo, one line per (node, partition): name | partition | memory (MB) | CPUs | GRES
SINFO = ["sinfo", "--noheader", "--Node", "--format=%N|%P|%m|%c|%G"]
# SLURM's words for a memory kill: slurmstepd's line in the job's log (limit enforced by
# polling, or a cgroup's OOM killer), or the job state the plugin's message names. Specific
# enough that a rule's own log (a CUDA "out of memory", say) does not match.
MEMORY_KILL = re.compile(r"exceeded memory limit \((\d+) > (\d+)\)|oom[_-]kill event|OUT_OF_MEMORY")
DOC = "docs/cluster.md"


class ClusterCheckError(Exception):
    """A SLURM run that cannot succeed as configured; raised before any job is submitted."""


# ---- unset variables -------------------------------------------------------------------------


def variables(text: str) -> list[str]:
    """Names of the environment variables `text` refers to ($NAME, ${NAME})."""
    return [a or b for a, b in VARIABLE.findall(text)]


def unset_variables(raw: dict[str, dict[str, object]], environ=None) -> dict[str, list[str]]:
    """{variable: ["rule:resource", ...]} for every variable a raw resource expression names
    that is unset or empty. `raw`: {rule: {resource: raw value as the profile gives it}}."""
    environ = os.environ if environ is None else environ
    missing: dict[str, list[str]] = {}
    for rule in sorted(raw):
        for name, value in sorted(raw[rule].items()):
            if not isinstance(value, str):
                continue
            for var in variables(value):
                if not environ.get(var):
                    missing.setdefault(var, []).append(f"{rule}:{name}")
    return missing


def unset_message(missing: dict[str, list[str]]) -> str:
    lines = []
    for var, where in missing.items():
        state = "empty" if var in os.environ else "not set"
        more = f" and {len(where) - 3} more" if len(where) > 3 else ""
        lines.append(f"  {var} is {state} (used by {', '.join(where[:3])}{more})")
    return (
        "SLURM run refused before submitting any job: the profile's resources name "
        "environment variables that are missing:\n"
        + "\n".join(lines)
        + f"\nexport them (what each one is: {DOC}), e.g.\n  export "
        + " ".join(f"{v}=..." for v in missing)
    )


# ---- node sizes ------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    mem_mb: int
    cpus: int
    gpus: int


@dataclass
class Partitions:
    nodes: dict[str, list[Node]] = field(default_factory=dict)  # partition -> its nodes
    default: str | None = None  # the partition sbatch uses without -p


def gpu_count(gres: str) -> int:
    """GPUs in a sinfo %G field: "gpu:a100:4(S:0-1),shard:8" -> 4; "(null)" -> 0."""
    total = 0
    for item in gres.split(","):
        parts = re.sub(r"\(.*?\)", "", item).split(":")
        if parts[0] == "gpu":
            count = parts[-1] if len(parts) > 1 else "1"
            total += int(count) if count.isdigit() else 1
    return total


def parse_sinfo(text: str) -> Partitions:
    """Partitions and their nodes from `sinfo --Node --format=%N|%P|%m|%c|%G`."""
    out = Partitions()
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        name, partition, mem, cpus, gres = fields
        if partition.endswith("*"):
            partition = partition[:-1]
            out.default = partition
        mem_mb = int(re.sub(r"\D.*", "", mem) or 0)
        cpus_n = int(re.sub(r"\D.*", "", cpus) or 0)
        out.nodes.setdefault(partition, []).append(Node(name, mem_mb, cpus_n, gpu_count(gres)))
    return out


def read_partitions() -> Partitions | None:
    """The cluster's partitions (`sinfo`), or None when sinfo does not answer."""
    try:
        p = subprocess.run(SINFO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    return parse_sinfo(p.stdout)


@dataclass
class Request:
    """What one job asks SLURM for (evaluated resources)."""

    rule: str
    partition: str | None = None
    mem_mb: int | None = None
    mem_mb_per_cpu: int | None = None
    cpus: int = 1
    gpus: int = 0

    @property
    def memory(self) -> int | None:
        if self.mem_mb:
            return int(self.mem_mb)
        if self.mem_mb_per_cpu:
            return int(self.mem_mb_per_cpu) * self.cpus
        return None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def request_of(rule: str, resources: dict) -> Request:
    """A Request from a job's evaluated resources (Snakemake names, as the executor reads them)."""
    gpus = _int(resources.get("gpu")) or 0
    if not gpus and resources.get("gres"):
        gpus = gpu_count(str(resources["gres"]))
    return Request(
        rule=rule,
        partition=str(resources["slurm_partition"]) if resources.get("slurm_partition") else None,
        mem_mb=_int(resources.get("mem_mb")),
        mem_mb_per_cpu=_int(resources.get("mem_mb_per_cpu")),
        cpus=_int(resources.get("cpus_per_task")) or 1,
        gpus=gpus,
    )


def oversized(requests: list[Request], partitions: Partitions) -> list[str]:
    """One line per (rule, problem): a partition that does not exist, or a request that no node
    of the job's partition (without one: the default partition, else any node) can hold."""
    problems: dict[tuple, str] = {}
    every = [n for nodes in partitions.nodes.values() for n in nodes]
    for r in requests:
        part = r.partition or partitions.default
        if part is not None and part not in partitions.nodes:
            known = ", ".join(sorted(partitions.nodes)) or "none"
            problems[(r.rule, "partition", part)] = (
                f"rule {r.rule}: partition {part!r} does not exist (partitions: {known})"
            )
            continue
        nodes = partitions.nodes.get(part, every) if part else every
        if not nodes:
            continue
        where = f"partition {part!r}" if part else "the cluster"
        mem = r.memory
        biggest = max(n.mem_mb for n in nodes)
        if mem is not None and biggest and mem > biggest:
            what = "mem_mb" if r.mem_mb else f"mem_mb_per_cpu x cpus_per_task = {mem}"
            value = f"mem_mb={mem}" if r.mem_mb else what
            problems[(r.rule, "mem", part)] = (
                f"rule {r.rule}: {value} exceeds the memory of every node in {where} "
                f"(largest: {biggest} MB)"
            )
        most = max(n.cpus for n in nodes)
        if r.cpus > most:
            problems[(r.rule, "cpus", part)] = (
                f"rule {r.rule}: cpus_per_task={r.cpus} exceeds the CPUs of every node in "
                f"{where} (most: {most})"
            )
        gpus = max(n.gpus for n in nodes)
        if r.gpus > gpus:
            problems[(r.rule, "gpus", part)] = (
                f"rule {r.rule}: gpu={r.gpus} but the nodes of {where} have "
                + (f"at most {gpus} GPUs" if gpus else "no GPUs (no gpu GRES)")
            )
    return list(problems.values())


def oversized_message(problems: list[str]) -> str:
    return (
        "SLURM run refused before submitting any job: no node can run these jobs "
        "(node sizes from `sinfo`):\n  "
        + "\n  ".join(problems)
        + "\nLower the request in the profile's set-resources, or point DNARCH_SLURM_PARTITION / "
        f"DNARCH_SLURM_GPU_PARTITION at a partition with bigger nodes ({DOC})."
    )


# ---- memory kills, after the run ---------------------------------------------------------------

_ERROR = re.compile(r"^Error in rule (\S+):\n((?:[ \t]+.*\n?)*)", re.M)
_JOB = re.compile(r"^(?:local)?rule (\S+):\n((?:[ \t]+.*\n?)*)", re.M)


def _field(block: str, name: str) -> str | None:
    m = re.search(rf"^\s+{name}: (.*)$", block, re.M)
    return m.group(1).strip() if m else None


@dataclass
class MemoryKill:
    rule: str
    external_jobid: str | None
    wildcards: str | None
    mem_mb: int | None
    used_mb: int | None
    slurm_log: str | None

    def message(self) -> str:
        job = f" ({self.wildcards})" if self.wildcards else ""
        slurm = f", SLURM job {self.external_jobid}" if self.external_jobid else ""
        asked = f"mem_mb={self.mem_mb}" if self.mem_mb is not None else "its mem_mb"
        used = f" (it reached {self.used_mb} MB)" if self.used_mb else ""
        log = f" SLURM's log: {self.slurm_log}." if self.slurm_log else ""
        dataset = re.search(r"dataset=(\w+)", self.wildcards or "")
        if self.rule.startswith(("train_", "ladder_train_")) and dataset:
            # training rules take mem_mb per dataset from the workflow profile, not set-resources
            where = (
                f"Raise hyper.{dataset[1]}.mem_mb in the workflow profile "
                f"(pipelines/config/<profile>.yaml), or set mem_mb of {self.rule} in the "
                f"cluster profile's set-resources (one value for every dataset)"
            )
        else:
            where = f"Raise mem_mb of {self.rule} in the cluster profile's set-resources"
        return (
            f"rule {self.rule}{job}{slurm}: killed by SLURM for exceeding its memory request "
            f"{asked}{used}. {where} (a --set-resources on the command line replaces the "
            f"profile's whole set-resources).{log}"
        )


def memory_kills(log_text: str, read=None) -> list[MemoryKill]:
    """Jobs of a Snakemake log whose failure SLURM attributes to memory: the error block's
    message (OUT_OF_MEMORY, cgroup clusters) or the job's SLURM log (`read(path)` -> text)."""
    read = read or _read
    requested: dict[str, tuple[str | None, int | None]] = {}
    for m in _JOB.finditer(log_text):
        block = m.group(2)
        jobid = _field(block, "jobid")
        mem = re.search(r"\bmem_mb=(\d+)", _field(block, "resources") or "")
        if jobid is not None:
            requested[jobid] = (_field(block, "wildcards"), int(mem.group(1)) if mem else None)
    kills, seen = [], set()
    for m in _ERROR.finditer(log_text):
        rule, block = m.group(1), m.group(2)
        external = _field(block, "external_jobid")
        # the rule's log(s), then the SLURM log the plugin appends
        listed = re.sub(r"\(check log.*", "", _field(block, "log") or "").split(",")
        logs = [p.strip() for p in listed if p.strip()]
        hit, where = None, logs[-1] if logs else None
        for path, text in [(where, _field(block, "message") or "")] + [(p, read(p)) for p in logs]:
            hit = MEMORY_KILL.search(text)
            if hit:
                where = path
                break
        if hit is None or (rule, external) in seen:
            continue
        seen.add((rule, external))
        wildcards, mem_mb = requested.get(_field(block, "jobid") or "", (None, None))
        used = int(hit.group(1)) // 2**20 if hit.group(1) else None
        kills.append(MemoryKill(rule, external, wildcards, mem_mb, used, where))
    return kills


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# ---- job states ---------------------------------------------------------------------------------


def preempted_is_over(job: str) -> bool:
    """A job sacct calls PREEMPTED is over (PreemptMode=CANCEL) when squeue no longer lists it
    as pending or running; under PreemptMode=REQUEUE sacct says PREEMPTED while the requeued job
    waits (squeue: PENDING). When squeue does not answer, the job counts as not over."""
    try:
        p = subprocess.run(
            ["squeue", "--noheader", "--jobs", job, "--format=%T"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if p.returncode != 0:
        return "invalid job id" in p.stderr.lower()  # gone from the controller's memory
    return not p.stdout.strip()


def normalised(states: dict[str, str] | None, preempted_is_over=preempted_is_over):
    """The plugin's {job: state} with each state cut to its first word ("CANCELLED by 0" ->
    "CANCELLED") and a PREEMPTED job that is over made "CANCELLED" (module doc)."""
    if states is None:
        return None
    out = {job: (state.split() or [state])[0] for job, state in states.items()}
    for job, state in out.items():
        if state == "PREEMPTED" and preempted_is_over(job):
            out[job] = "CANCELLED"
    return out


def normalise_job_states(plugin=None) -> bool:
    """Wrap the SLURM executor plugin's status query so that it returns normalised states
    (module doc). True when the plugin is loaded (the submitting Snakemake) and now wrapped."""
    import sys

    plugin = plugin or sys.modules.get("snakemake_executor_plugin_slurm")
    query = getattr(plugin, "query_job_status", None)
    if query is None or getattr(query, "normalises_states", False):
        return False

    async def query_job_status(command, logger):
        states, took = await query(command, logger)
        return normalised(states), took

    query_job_status.normalises_states = True
    plugin.query_job_status = query_job_status
    return True


# ---- Snakemake glue -----------------------------------------------------------------------------


def is_slurm(workflow) -> bool:
    plugin = getattr(workflow, "executor_plugin", None)
    return plugin is not None and getattr(plugin, "name", None) == "slurm"


def _raw_resources(rule) -> dict[str, object]:
    return {name: getattr(res, "raw", res) for name, res in rule.resources.items()}


def before_submission(workflow, partitions: Partitions | None = None, logger=None) -> None:
    """Raise ClusterCheckError when a SLURM run cannot succeed as configured (module doc)."""
    if not is_slurm(workflow):
        return
    normalise_job_states()
    # jobs that run on the submitting host (rule all, localrules) never meet sbatch
    jobs = [job for job in workflow.dag.needrun_jobs() if not job.is_local]
    rules = {job.rule.name: job.rule for job in jobs}
    missing = unset_variables({name: _raw_resources(rule) for name, rule in rules.items()})
    if missing:
        raise ClusterCheckError(unset_message(missing))
    partitions = partitions or read_partitions()
    if partitions is None:
        if logger is not None:
            logger.warning(f"{shlex.join(SINFO)} did not answer: node sizes not checked")
        return
    requests = [request_of(job.rule.name, dict(job.resources.items())) for job in jobs]
    problems = oversized(requests, partitions)
    if problems:
        raise ClusterCheckError(oversized_message(problems))


def after_failure(workflow, log) -> list[str]:
    """Messages for the jobs SLURM killed for memory in this run's log file(s) (Snakemake's
    onerror passes a list of paths), empty when there are none."""
    if not is_slurm(workflow) or not log:
        return []
    paths = [log] if isinstance(log, str | os.PathLike) else list(log)
    return [k.message() for p in paths for k in memory_kills(_read(p))]
