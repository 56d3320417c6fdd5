"""adserve: pick the right ad for the right listener, never over a frequency cap."""
