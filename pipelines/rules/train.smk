# Training: one job per (dataset, variant, framework, seed) -> python -m pipelines.train, or
# with group_variants (smoke) one job per (dataset, framework, seed) for all the variants.
# The checkpoint in the run directory is not a declared output, so Snakemake never deletes it:
# a killed or failed job, rerun, resumes from its last finished epoch.


# One rule per framework (train_torch, train_jax; train_torch_virtual in the claims profile)
# because each runs in its own image: the CUDA builds of PyTorch and JAX conflict
# (workflow.md). SLURM resources are keyed by these names.
#
# group_variants (smoke): one job per (dataset, framework, seed) trains every variant in one
# process (`--variant ccnn k kr krwd --out .../{variant}/...`): same runs, same files, but a
# process start, the framework imports and the small eager programs once per dataset (issue 14).
GROUP = config["group_variants"]


def group_variants(fw):
    """The variants one grouped job of framework `fw` trains (runs())."""
    if fw == "torch_virtual":
        return [v for v in VARIANTS if v in config["claims"]["virtual_variants"]]
    return list(VARIANTS)


for _fw in FRAMEWORKS if GROUP else ():

    rule:
        name:
            f"train_{_fw}"
        input:
            f"{PATHS['data']}/{{dataset}}/meta.json",
        output:
            result=expand(
                f"{RUN}/result.json".replace("{framework}", _fw),
                variant=group_variants(_fw),
                allow_missing=True,
            ),
            metrics=expand(
                f"{RUN}/metrics.csv".replace("{framework}", _fw),
                variant=group_variants(_fw),
                allow_missing=True,
            ),
        log:
            f"{PATHS['logs']}/train/{{dataset}}/{_fw}/seed{{seed}}.log",
        benchmark:
            f"{PATHS['benchmarks']}/train/{{dataset}}/{_fw}/seed{{seed}}.tsv"
        threads: config["threads"]
        resources:
            runtime=lambda wildcards, _fw=_fw: len(group_variants(_fw))
            * config["hyper"][wildcards.dataset]["runtime_min"],
            mem_mb=lambda wildcards: config["hyper"][wildcards.dataset]["mem_mb"],
            gpu=config["gpus"],
        params:
            framework=_fw,
            variants=" ".join(group_variants(_fw)),
            profile=PROFILE,
            out=lambda wildcards, _fw=_fw: RUN.format(
                dataset=wildcards.dataset, variant="{variant}", framework=_fw, seed=wildcards.seed
            ),
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


for _fw in FRAMEWORKS if not GROUP else ():

    rule:
        name:
            f"train_{_fw}"
        input:
            f"{PATHS['data']}/{{dataset}}/meta.json",
        output:
            result=f"{RUN}/result.json".replace("{framework}", _fw),
            metrics=f"{RUN}/metrics.csv".replace("{framework}", _fw),
        log:
            f"{PATHS['logs']}/train/{{dataset}}/{{variant}}/{_fw}/seed{{seed}}.log",
        benchmark:
            f"{PATHS['benchmarks']}/train/{{dataset}}/{{variant}}/{_fw}/seed{{seed}}.tsv"
        threads: config["threads"]
        resources:
            runtime=lambda wildcards: config["hyper"][wildcards.dataset]["runtime_min"],
            mem_mb=lambda wildcards: config["hyper"][wildcards.dataset]["mem_mb"],
            gpu=config["gpus"],
        params:
            framework=_fw,
            profile=PROFILE,
            out=lambda wildcards, output: os.path.dirname(output.result),
            data=lambda wildcards, input: os.path.dirname(input[0]),
            config=f"--config {EFFECTIVE_CONFIG}" if EFFECTIVE_CONFIG else "",
        conda:
            ENV
        container:
            train_image(backend_of(_fw))
        shell:
            "python -m pipelines.train --framework {params.framework} "
            "--dataset {wildcards.dataset} --variant {wildcards.variant} "
            "--profile {params.profile} --seed {wildcards.seed} --out {params.out} "
            "--data {params.data} --threads {threads} {params.config} > {log} 2>&1"
