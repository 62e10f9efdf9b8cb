"""Alias of ``aico.data.schema.registry.SchemaRegistry``: the data layer's documented path."""

from aico.data.schema.registry import SchemaRegistry

__all__ = ["SchemaRegistry"]
