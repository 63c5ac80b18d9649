"""The status page of the admin port: a live view of the fleet and the actions on it.

``history`` keeps a bounded ring of samples and the pure arithmetic over them, ``scrape`` reads
what workers report about their runs, ``sampler`` fills the ring from a background task (never
from the proxy's per-request path), ``model`` builds the JSON document the page and
``graphfleet ctl`` share, ``auth`` keeps the page's sessions and CSRF tokens, and ``views``
serves the page, its assets, the login and ``GET /admin/status``.
"""
