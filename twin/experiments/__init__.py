"""twin.experiments."""
