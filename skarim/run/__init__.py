"""Running an imaging job: the Zarr store, worker tasks, scheduling and Dask clusters."""
