"""Reading and writing files: Measurement Sets (python-casacore) and FITS cubes (Astropy)."""
