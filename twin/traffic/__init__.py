"""twin.traffic."""
