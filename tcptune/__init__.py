"""tcptune: inspect, explain and safely tune Linux TCP teardown and keepalive settings."""

__version__ = "0.1.0"
