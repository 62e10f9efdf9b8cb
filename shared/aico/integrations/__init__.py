"""Faces of aico for the interfaces agents already use, each behind its optional extra.

- ``aico.integrations.langgraph``: ``AicoStore``, a LangGraph ``BaseStore``
  (``pip install aico[langgraph]``);
- ``aico.integrations.mcp``: the Model Context Protocol server behind ``aico mcp``
  (``pip install aico[mcp]``);
- ``aico.integrations.mem0``: ``Memory`` and ``AsyncMemory`` with mem0's method names and
  return shapes (no extra needed).

Importing this package imports none of them, so ``import aico`` works without the extras.
Their tables are the "integrations" schema (``aico.integrations.schema``) of the encrypted
core database; see docs/integrations.md.
"""

__all__: list[str] = []
