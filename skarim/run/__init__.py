"""Running an imaging job: worker tasks, their scheduling, and the Dask clusters they run on.

- :mod:`~skarim.run.pipeline`: one run, from configuration to products (``run_imaging``);
- :mod:`~skarim.run.schedule`: tasks submitted as the results they depend on come back;
- :mod:`~skarim.run.tasks`: every worker task, its context and its typed result;
- :mod:`~skarim.run.runner`: Dask or this process, behind one interface;
- :mod:`~skarim.run.cluster`, :mod:`~skarim.run.workers`, :mod:`~skarim.run.jobqueue`:
  local clusters, worker planning, SLURM and PBS.
- :mod:`~skarim.run.budget`, :mod:`~skarim.run.stage_memory`: a run's tasks, memory, I/O,
  storage and time per stage, planned before it runs;
- :mod:`~skarim.run.observation`, :mod:`~skarim.run.costs`, :mod:`~skarim.run.calibrate`:
  the visibilities counted, a machine's costs and their measurement;
- :mod:`~skarim.run.preflight`: a run whose tasks cannot fit a worker's memory, refused.
"""
