"""Running an imaging job: worker tasks, their scheduling, and the Dask clusters they run on.

- :mod:`~skarim.run.pipeline`: one run, from configuration to products (``run_imaging``);
- :mod:`~skarim.run.schedule`: tasks submitted as the results they depend on come back;
- :mod:`~skarim.run.tasks`: every worker task, its context and its typed result;
- :mod:`~skarim.run.runner`: Dask or this process, behind one interface;
- :mod:`~skarim.run.cluster`, :mod:`~skarim.run.workers`, :mod:`~skarim.run.jobqueue`:
  local clusters, worker planning, SLURM and PBS.
"""
