"""Routing rules: YAML written by admins, checked, compiled once, applied to each new request."""

from mailroom.rules.engine import route
from mailroom.rules.loader import load
from mailroom.rules.model import Known, Route, RuleSet

__all__ = ["Known", "Route", "RuleSet", "load", "route"]
