# Data: python -m data_prep <dataset> writes <paths.data>/<dataset>/{meta.json, <split>/*.npy}.
# smoke: --source generate (offline generators, tiny sizes: `generate_size` per dataset);
# paper: --source download, with local files / mirrors from the config keys data_files and
# data_urls (DarcyFlow and Cosmic have no working public URL: they need one of the two).
rule data:
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
