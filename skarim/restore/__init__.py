"""Restoration: clean beams, restored images and the FITS products of a run."""
