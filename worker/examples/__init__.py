"""Example graphs shipped with the worker: no LLM, no network, deterministic.

``langgraph.json`` in this folder is the worker's default ``WORKER_GRAPHS``.
"""
