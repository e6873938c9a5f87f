# Training: one job per (dataset, variant, framework, seed) -> python -m pipelines.train, or
# with group_variants (smoke) one job per (dataset, framework, seed) for all the variants.
# The checkpoint in the run directory is not a declared output, so Snakemake never deletes it:
# a killed or failed job, rerun, resumes from its last finished epoch.


# One rule per framework (train_torch, train_jax; train_torch_virtual in the claims profile)
# because each runs in its own image: the CUDA builds of PyTorch and JAX bring conflicting
# cuDNN/CUDA libraries (containers/images.py). SLURM resources are keyed by these names.
#
# group_variants (smoke): one job per (dataset, framework, seed) trains every variant in one
# process (`--variant ccnn k kr krwd --out .../{variant}/...`): same runs, same files, but a
# process start, the framework imports and the small eager programs once per dataset.
GROUP = config["group_variants"]


def group_variants(fw):
    """The variants one grouped job of framework `fw` trains (runs())."""
    if fw == "torch_virtual":
        return [v for v in VARIANTS if v in config["claims"]["virtual_variants"]]
    return list(VARIANTS)


def train_outputs(fw, name):
    """`name` of the run(s) one job writes: every variant's with group_variants."""
    path = f"{RUN}/{name}".replace("{framework}", fw)
    return expand(path, variant=group_variants(fw), allow_missing=True) if GROUP else path


def train_variants(fw):
    """--variant of one job (a function of its wildcards)."""
    return lambda wildcards: " ".join(group_variants(fw)) if GROUP else wildcards.variant


def train_out(fw):
    """--out of one job: its run directory, or the pattern with {variant} when grouped."""
    return lambda wildcards: RUN.format(
        dataset=wildcards.dataset,
        variant="{variant}" if GROUP else wildcards.variant,
        framework=fw,
        seed=wildcards.seed,
    )


# grouped jobs have no {variant} wildcard: one log and one benchmark per dataset and framework
_JOB = "{dataset}/{fw}" if GROUP else "{dataset}/{variant}/{fw}"

for _fw in FRAMEWORKS:

    rule:
        name:
            f"train_{_fw}"
        input:
            f"{PATHS['data']}/{{dataset}}/meta.json",
        output:
            result=train_outputs(_fw, "result.json"),
            metrics=train_outputs(_fw, "metrics.csv"),
        log:
            f"{PATHS['logs']}/train/{_JOB.replace('{fw}', _fw)}/seed{{seed}}.log",
        benchmark:
            f"{PATHS['benchmarks']}/train/{_JOB.replace('{fw}', _fw)}/seed{{seed}}.tsv"
        threads: config["threads"]
        resources:
            runtime=lambda wildcards, _fw=_fw: (len(group_variants(_fw)) if GROUP else 1)
            * config["hyper"][wildcards.dataset]["runtime_min"],
            mem_mb=lambda wildcards: config["hyper"][wildcards.dataset]["mem_mb"],
            cpus_per_task=config["threads"],
            gpu=config["gpus"],
        params:
            framework=_fw,
            variants=train_variants(_fw),
            profile=PROFILE,
            out=train_out(_fw),
            data=lambda wildcards, input: os.path.dirname(input[0]),
            config=f"--config {EFFECTIVE_CONFIG}" if EFFECTIVE_CONFIG else "",
        conda:
            ENV
        container:
            train_image(backend_of(_fw))
        shell:
            "python -m pipelines.train --framework {params.framework} "
            "--dataset {wildcards.dataset} --variant {params.variants} "
            "--profile {params.profile} --seed {wildcards.seed} --out '{params.out}' "
            "--data {params.data} --threads {threads} {params.config} > {log} 2>&1"
