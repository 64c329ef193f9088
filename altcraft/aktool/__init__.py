"""aktool: the maintenance command line."""
