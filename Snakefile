"""dnarch-repro workflow: data -> training (dataset x variant x framework x seed) -> the
paper's Tables 1-5, Fig. 10, the framework parity table and an HTML/Markdown summary.

    snakemake --cores 8 reports/table1.csv                  # paper profile (the default)
    snakemake --cores 2 --config profile=smoke              # offline smoke run -> smoke/
    snakemake --cores 2 --config profile=claims             # the claims study -> claims/
    snakemake -n reports/table1.csv --config profile=paper  # plan only
    snakemake --config profile=smoke --report smoke/report.html

Profiles: pipelines/config/{paper,smoke,claims}.yaml, validated against pipelines/config/schema.yaml.
Rules: pipelines/rules/*.smk. The rules only wire CLIs together: python -m data_prep,
python -m pipelines.train, python -m pipelines.parity, python -m reports.build.
Put `--config ...` last: it takes every argument after it as a key=value pair, targets too.
With --sdm apptainer (pipelines/profiles/slurm, local, tpu) every rule runs in its image
(containers/images.py): train_torch / train_jax in the framework's image, the rest in cpu.
"""

from snakemake.utils import min_version

min_version("9.0")


include: "pipelines/rules/common.smk"
include: "pipelines/rules/data.smk"
include: "pipelines/rules/train.smk"
include: "pipelines/rules/reports.smk"
include: "pipelines/rules/ladder.smk"
include: "pipelines/rules/cluster.smk"
include: "containers/containers.smk"


rule all:
    default_target: True
    input:
        all_reports(),
