# The step ladder (claims profile, `ladder` section): claims C1-C4 at several training lengths
# per dataset, so that a verdict reached after a few hundred steps can be told apart from one
# that changes with more training.
#
#   snakemake --cores 2 claims/ladder.csv --config profile=claims   # -> claims/ladder.{csv,png}
#
# One training job per (dataset, rung, variant, framework, seed): python -m pipelines.train
# with --epochs E, so the warm-up + cosine schedule spans the rung's own E epochs (a longer
# rung is a run of its own, never a continuation of a shorter one) and result.json records
# E and the steps. A rung equal to the profile's epochs IS the main study's run of that
# variant, framework and seed (same configuration, same run key): the ladder reads it from
# paths.runs instead of training it twice. Ladder runs live beside the reports, in
# <paths.reports>/ladder/<dataset>/e<E>/<variant>/<framework>/seed<S>.
# reports.ladder evaluates each rung with the claims registry's own rules (reports.claims).
LADDER = config.get("ladder", {})
# the profile's datasets that have rungs: `--config datasets=[...]` narrows the ladder too
LADDER_EPOCHS = {d: e for d, e in LADDER.get("epochs", {}).items() if d in DATASETS}
LADDER_RUNS = f"{PATHS['reports']}/ladder"
LADDER_RUN = f"{LADDER_RUNS}/{{dataset}}/e{{epochs}}/{{variant}}/{{framework}}/seed{{seed}}"

if LADDER_EPOCHS:
    from reports.claims import ClaimsError  # noqa: E402
    from reports.ladder import check_claims  # noqa: E402

    try:
        check_claims(LADDER["claims"], VARIANTS)
    except ClaimsError as e:
        raise WorkflowError(f"profile {PROFILE!r}, ladder: {e}") from None


def ladder_run(dataset, epochs, variant, framework, seed, name="result.json"):
    """`name` of one ladder run: the main study's run where the rung is the profile's epochs
    and the main study trains that variant, framework and seed; else the ladder's own."""
    if (
        int(epochs) == config["hyper"][dataset]["epochs"]
        and variant in VARIANTS
        and framework in FRAMEWORKS
        and int(seed) in SEEDS
    ):
        path = RUN
    else:
        path = LADDER_RUN.replace("{epochs}", str(epochs))
    return os.path.join(
        path.format(dataset=dataset, variant=variant, framework=framework, seed=seed), name
    )


def ladder_runs(name="result.json"):
    return [
        ladder_run(d, e, v, fw, s, name)
        for d, rungs in LADDER_EPOCHS.items()
        for e in rungs
        for v in VARIANTS
        for fw in LADDER["frameworks"]
        for s in LADDER["seeds"]
    ]


for _fw in LADDER["frameworks"] if LADDER_EPOCHS else []:

    rule:
        name:
            f"ladder_train_{_fw}"
        input:
            f"{PATHS['data']}/{{dataset}}/meta.json",
        output:
            result=f"{LADDER_RUN.replace('{framework}', _fw)}/result.json",
            metrics=f"{LADDER_RUN.replace('{framework}', _fw)}/metrics.csv",
        log:
            f"{PATHS['logs']}/ladder/{{dataset}}/e{{epochs}}/{{variant}}/{_fw}/seed{{seed}}.log",
        benchmark:
            f"{PATHS['benchmarks']}/ladder/{{dataset}}/e{{epochs}}/{{variant}}/{_fw}/seed{{seed}}.tsv"
        wildcard_constraints:
            epochs=r"\d+",
        threads: config["threads"]
        resources:
            # runtime_min is per run of the profile's epochs; a rung scales it
            runtime=lambda wildcards: -(
                -config["hyper"][wildcards.dataset]["runtime_min"]
                * int(wildcards.epochs)
                // config["hyper"][wildcards.dataset]["epochs"]
            ),
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
            "--profile {params.profile} --seed {wildcards.seed} --epochs {wildcards.epochs} "
            "--out '{params.out}' --data {params.data} --threads {threads} {params.config} "
            "--no-progress > {log} 2>&1"


if LADDER_EPOCHS:

    rule:
        name:
            "ladder"
        input:
            results=ladder_runs(),
            metrics=ladder_runs("metrics.csv"),
        output:
            csv=report_path("ladder.csv"),
            png=report(report_path("ladder.png"), category="Claims"),
        log:
            f"{PATHS['logs']}/reports/ladder.log",
        params:
            profile=PROFILE,
            ids=" ".join(LADDER["claims"]),
            variants=" ".join(VARIANTS),
            tol=config["tolerance"],
            band=config["claims"]["band"],
        conda:
            ENV
        container:
            IMAGE_CPU
        shell:
            "python -m reports.ladder --profile {params.profile} --claims {params.ids} "
            "--variants {params.variants} --accuracy-points {params.tol[accuracy_points]} "
            "--error-relative {params.tol[error_relative]} --band {params.band} "
            "--csv {output.csv} --png {output.png} {input.results} > {log} 2>&1"

    # The figure under docs/, for the claims write-up to show:
    # `snakemake --cores 1 docs/claims_ladder.png --config profile=claims`, then commit it.
    rule:
        name:
            "ladder_docs_figure"
        input:
            report_path("ladder.png"),
        output:
            "docs/claims_ladder.png",
        log:
            f"{PATHS['logs']}/reports/ladder_docs_figure.log",
        conda:
            ENV
        container:
            IMAGE_CPU
        shell:
            "cp {input} {output} > {log} 2>&1"
