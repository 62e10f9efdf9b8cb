"""The routers of ``/v1`` and the mem0-compatible router."""
