# Data: python -m data_prep <dataset> writes <paths.data>/<dataset>/{meta.json, <split>/*.npy}.
# smoke: --source generate (offline generators, tiny sizes: `generate_size` per dataset);
# paper: --source download: the registry's URLs and mirrors (data_prep/registry.py, tried in
# order), or local files / mirrors from the config keys data_files and data_urls.
# LRA: the lra_extract rule reads lra_release.gz ONCE for ListOps, Retrieval, Pathfinder and
# Path-X into <paths.data>/lra; their data jobs read that shared cache.
rule lra_extract:
    output:
        f"{LRA_CACHE}/manifest.json",
    log:
        f"{PATHS['logs']}/data/lra_extract.log",
    params:
        args=lra_args,
        out=lambda wildcards, output: os.path.dirname(output[0]),
    resources:
        runtime=600,
        mem_mb=4000,
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m data_prep lra-extract {params.args} --out {params.out} > {log} 2>&1 || "
        "{{ echo 'lra_extract failed, see {log}; or give the archive: config data_files.lra' >&2; "
        "exit 1; }}"


rule data:
    input:
        data_inputs,
    output:
        f"{PATHS['data']}/{{dataset}}/meta.json",
    log:
        f"{PATHS['logs']}/data/{{dataset}}.log",
    params:
        args=data_args,
        hint=data_hint,
        out=lambda wildcards, output: os.path.dirname(output[0]),
    resources:
        runtime=600,
        mem_mb=16000,
    conda:
        ENV
    container:
        IMAGE_CPU
    shell:
        "python -m data_prep {wildcards.dataset} {params.args} --out {params.out} --no-progress "
        "> {log} 2>&1 || {{ echo 'data rule: {params.hint:q}; log: {log}' >&2; exit 1; }}"
