"""twin.sim."""
