"""Simulated observations: antenna layouts, uv tracks, sky models and Measurement Sets."""
