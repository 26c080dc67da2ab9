"""The version of agentkit, in a module of its own so the client can read it without
importing the package."""

__version__ = "0.1.0"
