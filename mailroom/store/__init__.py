"""Durable state: requests, messages, events and the outbox, through SQLAlchemy."""
