"""The graphfleet worker: runs LangGraph graphs behind the LangGraph Server API.

Layers point down, and each folder says what it may import: ``worker.api`` (HTTP and
WebSocket handlers) → ``worker.runs`` (the run service) → ``worker.store`` (persistence).
Beside them: ``app`` (assembly and lifecycles), ``keys`` (typed app keys), ``settings``,
``graphs``, ``membership`` (registration with the LB), ``webhooks`` (a run observer),
``metrics``, ``errors``. The worker shares only ``common`` with the LB, never ``lb``.
"""
