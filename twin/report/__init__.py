"""twin.report."""
