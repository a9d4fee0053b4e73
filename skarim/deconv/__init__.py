"""Deconvolution of (channel, tile) windows: the measurement operator, the RIM, CLEAN and
major cycles."""
