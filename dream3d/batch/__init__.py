"""`dream3d batch`: many prompts as Ray tasks, locally or on a cluster (see dream3d.batch.driver).

    from dream3d.batch import BatchConfig, run_batch
    result = run_batch(BatchConfig(prompts=Path("prompts.txt"), out=Path("outputs/batch")))

Ray is an optional extra (pip install 'dream3d[batch]'), imported only when a batch runs.
"""
from dream3d.batch.driver import BatchConfig, BatchInterrupted, BatchResult, run_batch
from dream3d.batch.jobs import BatchJob, JobSettings, PromptLine, make_jobs, read_prompt_file
from dream3d.batch.manifest import JobRecord, JobStatus

__all__ = ["BatchConfig", "BatchInterrupted", "BatchJob", "BatchResult", "JobRecord", "JobSettings", "JobStatus",
           "PromptLine", "make_jobs", "read_prompt_file", "run_batch"]
