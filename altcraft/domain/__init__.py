"""The platform's business rules: accounts, users, tokens, profile databases, profiles.

Plain Python over the store adapters: nothing here knows of Flask, gunicorn or pika.
Every query on account data is scoped by account id.
"""
