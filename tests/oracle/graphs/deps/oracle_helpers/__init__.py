"""A package importable only because langgraph.json lists ``./deps`` in ``dependencies``."""
