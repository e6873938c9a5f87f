# Training: one job per (dataset, variant, framework, seed) -> python -m pipelines.train.
# The checkpoint in the run directory is not a declared output, so Snakemake never deletes it:
# a killed or failed job, rerun, resumes from its last finished epoch.


rule train:
    input:
        f"{PATHS['data']}/{{dataset}}/meta.json",
    output:
        result=f"{RUN}/result.json",
        metrics=f"{RUN}/metrics.csv",
    log:
        f"{PATHS['logs']}/train/{{dataset}}/{{variant}}/{{framework}}/seed{{seed}}.log",
    benchmark:
        f"{PATHS['benchmarks']}/train/{{dataset}}/{{variant}}/{{framework}}/seed{{seed}}.tsv"
    threads: config["threads"]
    resources:
        runtime=lambda wildcards: config["hyper"][wildcards.dataset]["runtime_min"],
        mem_mb=lambda wildcards: config["hyper"][wildcards.dataset]["mem_mb"],
        gpu=config["gpus"],
    params:
        profile=PROFILE,
        out=lambda wildcards, output: os.path.dirname(output.result),
        data=lambda wildcards, input: os.path.dirname(input[0]),
    conda:
        ENV
    shell:
        "python -m pipelines.train --framework {wildcards.framework} "
        "--dataset {wildcards.dataset} --variant {wildcards.variant} --profile {params.profile} "
        "--seed {wildcards.seed} --out {params.out} --data {params.data} --threads {threads} "
        "> {log} 2>&1"
