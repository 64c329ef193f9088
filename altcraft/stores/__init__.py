"""One adapter per store; nothing else in the platform imports a database driver."""
