"""Imaging: visibility weighting, gridding with ducc0, prediction and exact residuals."""
