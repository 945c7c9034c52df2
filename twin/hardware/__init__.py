"""twin.hardware."""
