"""Shared test helpers (client builders, factories); imported as ``tests.helpers.<module>``."""
