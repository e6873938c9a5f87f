# Reports: python -m reports.build reads result.json / metrics.csv files (never a model) and
# writes the tables, Fig. 10 and the summary; python -m pipelines.parity writes parity.csv.
# Every output is a report(...) item for `snakemake --report report.html`.
PAPER_RESULTS = str(Path(workflow.basedir) / "reports" / "paper_results.yaml")
CAPTIONS = "../../reports/captions"


rule results_table:
    input:
        results=lambda wildcards: runs(TABLES[wildcards.table]),
        paper=PAPER_RESULTS,
    output:
        report(
            f"{PATHS['reports']}/{{table}}.csv",
            caption=f"{CAPTIONS}/results_table.rst",
            category="Results tables",
        ),
    log:
        f"{PATHS['logs']}/reports/{{table}}.log",
    params:
        profile=PROFILE,
        datasets=lambda wildcards: " ".join(TABLES[wildcards.table]),
        tol=config["tolerance"],
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m reports.build table --table {wildcards.table} --profile {params.profile} "
        "--datasets {params.datasets} --paper {input.paper} "
        "--accuracy-points {params.tol[accuracy_points]} "
        "--error-relative {params.tol[error_relative]} --out {output} {input.results} "
        "> {log} 2>&1"


rule architecture_table:
    input:
        results=lambda wildcards: runs(ARCH_TABLES[wildcards.arch], variants=["krwd"]),
        paper=PAPER_RESULTS,
    output:
        report(
            f"{PATHS['reports']}/{{arch}}.csv",
            caption=f"{CAPTIONS}/architecture_table.rst",
            category="Found architectures",
        ),
    log:
        f"{PATHS['logs']}/reports/{{arch}}.log",
    params:
        profile=PROFILE,
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m reports.build architectures --table {wildcards.arch} --profile {params.profile} "
        "--paper {input.paper} --out {output} {input.results} > {log} 2>&1"


rule fig10:
    input:
        results=runs(DATASETS, variants=[v for v in VARIANTS if v in ("kr", "krwd")] or VARIANTS),
    output:
        png=report(
            f"{PATHS['reports']}/fig10.png",
            caption=f"{CAPTIONS}/fig10.rst",
            category="Figures",
        ),
        pdf=f"{PATHS['reports']}/fig10.pdf",
    log:
        f"{PATHS['logs']}/reports/fig10.log",
    params:
        profile=PROFILE,
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m reports.build fig10 --profile {params.profile} --png {output.png} --pdf {output.pdf} "
        "{input.results} > {log} 2>&1"


rule parity:
    output:
        report(
            f"{PATHS['reports']}/parity.csv",
            caption=f"{CAPTIONS}/parity.rst",
            category="Parity",
        ),
    log:
        f"{PATHS['logs']}/reports/parity.log",
    params:
        p=config["parity"],
        trim="--no-trim" if config["parity"]["no_trim"] else "",
    threads: 1
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m pipelines.parity --variants {params.p[variants]} --dims {params.p[dims]} "
        "--heads {params.p[heads]} --dtypes {params.p[dtypes]} {params.trim} --out {output} "
        "> {log} 2>&1"


rule summary:
    input:
        tables=[p for p in all_reports() if p.endswith(".csv") and "parity" not in p],
        parity=report_path("parity.csv"),
        fig=report_path("fig10.png"),
    output:
        md=report_path("summary.md"),
        html=report(
            report_path("summary.html"),
            caption=f"{CAPTIONS}/summary.rst",
            category="Summary",
        ),
    log:
        f"{PATHS['logs']}/reports/summary.log",
    params:
        profile=PROFILE,
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m reports.build render --profile {params.profile} --md {output.md} "
        "--html {output.html} --fig {input.fig} --parity {input.parity} {input.tables} "
        "> {log} 2>&1"


rule claims:
    input:
        results=runs(DATASETS),
        metrics=runs(DATASETS, name="metrics.csv"),
        tables=[p for p in all_reports() if p.endswith(".csv") and "claims" not in Path(p).name],
    output:
        csv=report_path("claims.csv"),
        md=report_path("report.md"),
        html=report(
            report_path("report.html"),
            caption=f"{CAPTIONS}/summary.rst",
            category="Claims",
        ),
    log:
        f"{PATHS['logs']}/reports/claims.log",
    params:
        profile=PROFILE,
        ids=" ".join(CLAIM_IDS),
        variants=" ".join(VARIANTS),
        frameworks=" ".join(FRAMEWORKS),
        tol=config["tolerance"],
        band=config["claims"]["band"],
        out=lambda wildcards, output: os.path.dirname(output.csv),
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m reports.claims --profile {params.profile} --claims {params.ids} "
        "--variants {params.variants} --frameworks {params.frameworks} "
        "--accuracy-points {params.tol[accuracy_points]} "
        "--error-relative {params.tol[error_relative]} --band {params.band} "
        "--out-dir {params.out} {input.results} --tables {input.tables} > {log} 2>&1"
