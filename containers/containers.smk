"""Build rules for the project's Apptainer images, to be included by the workflow's Snakefile:

    include: "containers/containers.smk"

    snakemake --cores 1 images                        # all four .sif files
    snakemake --cores 1 containers/torch-cuda.sif     # one

A rule that runs in an image names it twice, so that a missing image is built first and a
rebuilt one does not invalidate finished results (`ancient`):

    from containers.images import image_for, sif_path
    rule train_torch:
        input: image=ancient(sif_path(image_for("torch"))), ...
        container: sif_path(image_for("torch"))

The builds are local rules: they need Apptainer >= 1.2 and internet access (PyPI, the base
image's registry), which login/build nodes have and compute nodes often lack. Extra flags for
`apptainer build` (e.g. --fakeroot) come from $DNARCH_APPTAINER_BUILD_ARGS. `run:` instead of
`shell:` because the build cannot itself run inside a container (snakemake --lint asks every
shell rule for one).
"""

from containers.images import IMAGES, sif_path
from pipelines.provenance import git_sha


rule images:
    input:
        [sif_path(name) for name in IMAGES],
    localrule: True


rule build_image:
    input:
        recipe="containers/{image}.def",
        lock="requirements.lock",
        pyproject="pyproject.toml",
    output:
        sif="containers/{image}.sif",
    log:
        "logs/containers/{image}.log",
    params:
        git_sha=lambda wildcards: git_sha(),
    wildcard_constraints:
        image="|".join(IMAGES),
    localrule: True
    run:
        shell(
            "apptainer build --force ${{DNARCH_APPTAINER_BUILD_ARGS:-}}"
            " --build-arg GIT_SHA={params.git_sha} {output.sif} {input.recipe} > {log} 2>&1"
        )
