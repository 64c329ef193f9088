"""Desired state of every store's schema, and `migrate`, which brings a store up to it.

Each part is declarative (tables with columns, indexes, exchanges and queues) and migrate
only adds what is missing, so running it again changes nothing.
"""
