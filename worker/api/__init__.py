"""HTTP and WebSocket handlers; each module registers one API's routes."""
