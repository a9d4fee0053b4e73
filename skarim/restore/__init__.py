"""Restoration: restored images and the FITS products of a run.

- :mod:`~skarim.restore.restore`: ``model (*) clean beam + residual``;
- :mod:`~skarim.restore.products`: per-channel cubes and MFS planes from the store.

The clean beam itself is fitted in :mod:`skarim.beam`.
"""
