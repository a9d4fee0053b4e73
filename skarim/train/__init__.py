"""Training the RIM on simulated imaging problems.

On the CPU, ``skarim train``: :mod:`~skarim.train.problems` draws the problems,
:mod:`~skarim.train.trainer` runs the resumable recipe with validation against classical
baselines. On a GPU, ``python -m skarim.train.gpu`` (:mod:`~skarim.train.gpu`,
:mod:`~skarim.train.gpu_trainer`, :mod:`~skarim.train.gpu_validation`): batches of windows
shaped like the pipeline's drawn on the device (:mod:`~skarim.train.gpu_problems`,
:mod:`~skarim.train.gpu_sky`, :mod:`~skarim.train.gpu_uv`), torch and numpy only. Both
optimise :mod:`~skarim.train.objective`.
"""
