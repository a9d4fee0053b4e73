"""Files: Measurement Sets (python-casacore), the run's Zarr store, FITS cubes (Astropy).

- :mod:`~skarim.io.ms_tables`, :mod:`~skarim.io.ms_meta`, :mod:`~skarim.io.correlations`: a
  Measurement Set's tables, the read selection and its description, correlation products;
- :mod:`~skarim.io.ms_read`: Stokes I visibilities and weights in bounded row chunks;
- :mod:`~skarim.io.ms_summary`: ``skarim info``;
- :mod:`~skarim.io.ms_write`, :mod:`~skarim.io.ms_write_columns`,
  :mod:`~skarim.io.ms_write_subtables`: writing Measurement Sets (simulation, tests);
- :mod:`~skarim.io.store`: the run's Zarr store, by (channel, tile), with progress markers;
- :mod:`~skarim.io.wcs`, :mod:`~skarim.io.fits`: image coordinates and FITS cubes.
"""
