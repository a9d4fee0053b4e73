"""Training the RIM on simulated imaging problems."""
