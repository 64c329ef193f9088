"""One module per platform process: thin wiring of the domain to HTTP or to a queue."""
