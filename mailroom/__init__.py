"""mailroom: email-driven request intake and routing for internal service desks."""

__version__ = "0.1.0"
