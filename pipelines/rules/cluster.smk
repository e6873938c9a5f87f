# SLURM checks (pipelines/cluster_checks.py), active only with the slurm executor:
# - before the first job is submitted, every variable the profile's resources name
#   (DNARCH_SLURM_*) is set, and every job fits some node of its partition (sinfo);
# - after a failed run, the jobs SLURM killed for exceeding mem_mb are named with their rule;
# - meanwhile a job state "CANCELLED by <uid>" reaches the executor plugin as "CANCELLED", so that
#   Snakemake resubmits a cancelled job instead of waiting for it forever.
# Snakemake keeps one onstart and one onerror handler per workflow (the last defined): these
# are the workflow's; a new hook goes into them.
from snakemake.logging import logger as _logger

from pipelines import cluster_checks


onstart:
    try:
        cluster_checks.before_submission(workflow, logger=_logger)
    except cluster_checks.ClusterCheckError as e:
        raise WorkflowError(str(e)) from None


onerror:
    for _line in cluster_checks.after_failure(workflow, log):
        _logger.error(_line)
