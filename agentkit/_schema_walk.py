"""The one walk over a JSON Schema that every schema job shares.

Three jobs walk the schemas of a tool: tidying pydantic's output (``_schema_gen``), making the
compact schema the model is sent (``_schema_compact``) and the strict transform
(``_schema_strict``). Which keywords hold subschemas, the order a walk visits them in, how a
node's subschemas are rebuilt and how a place in the schema is named are written here once,
as pydantic-ai's transformers share one base; each job says only what it does at one node:

* :func:`nodes` visits every node, each before its subschemas (a job may change a node in
  place, and the walk then goes on into what the node holds after the change);
* :class:`SchemaTransformer` rebuilds a schema: a subclass's :meth:`~SchemaTransformer.node`
  makes the new node and calls :meth:`~SchemaTransformer.children` where its subschemas are
  to be rebuilt by the same transformer.

(``StrictDecoder`` walks a value along a schema, not a schema: it has a walk of its own.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["SCHEMA_KEYWORDS", "SchemaTransformer", "nodes", "subschemas"]

# The keywords whose value is one schema, a list of schemas, or a name -> schema mapping,
# with how the place a subschema stands for is named (``where``: what an error names):
# ``parameters.city``, ``parameters.days[]`` (the items of an array, the values of a
# mapping), ``parameters.pair[0]``, ``parameters.tags{}`` (the keys of a mapping),
# ``$defs.Point``; a union's members are their union's place.
_ONE = "one"
_LIST = "list"
_MAP = "map"
# In the order a walk visits them: a node's named properties first, then the items of an
# array, the members of a union and last the definitions. A job that raises at the first
# problem it meets so reports the same one, however the keywords of the node are ordered.
# (keyword, kind, place: a suffix for one schema; for a list "[]" numbers its members; for
# a mapping "." names them after the node's place, "$defs." from the root)
_KEYWORDS: tuple[tuple[str, str, str], ...] = (
    ("properties", _MAP, "."),
    ("patternProperties", _MAP, "."),
    ("additionalProperties", _ONE, "[]"),
    ("propertyNames", _ONE, "{}"),
    ("dependentSchemas", _MAP, "."),
    ("unevaluatedProperties", _ONE, "[]"),
    ("items", _ONE, "[]"),
    ("prefixItems", _LIST, "[]"),
    ("contains", _ONE, "[]"),
    ("unevaluatedItems", _ONE, "[]"),
    ("anyOf", _LIST, ""),
    ("oneOf", _LIST, ""),
    ("allOf", _LIST, ""),
    ("not", _ONE, ""),
    ("if", _ONE, ""),
    ("then", _ONE, ""),
    ("else", _ONE, ""),
    ("$defs", _MAP, "$defs."),
    ("definitions", _MAP, "$defs."),
)
_KIND = {keyword: (kind, place) for keyword, kind, place in _KEYWORDS}
_RANK = {keyword: rank for rank, (keyword, _, _) in enumerate(_KEYWORDS)}

SCHEMA_KEYWORDS = frozenset(_KIND)
"""The keywords whose value holds subschemas."""


def _keywords_in(schema: dict[str, Any]) -> list[str]:
    """The subschema keywords ``schema`` has, in the walk's order."""
    found = [key for key in schema if key in _RANK]
    if len(found) > 1:
        found.sort(key=_RANK.__getitem__)
    return found


def subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The schemas ``schema`` holds directly, in the walk's order."""
    for key in _keywords_in(schema):
        value = schema[key]
        kind = _KIND[key][0]
        if kind is _ONE:
            if isinstance(value, dict):
                yield value
        elif kind is _LIST:
            if isinstance(value, list):
                yield from (item for item in value if isinstance(item, dict))
        elif isinstance(value, dict):
            yield from (item for item in value.values() if isinstance(item, dict))


def nodes(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``schema`` and every schema inside it, each before the ones it holds. What a node
    holds is read after the caller had the node, so a change to it is followed."""
    yield schema
    for sub in subschemas(schema):
        yield from nodes(sub)


class SchemaTransformer:
    """A rebuild of a JSON Schema, node by node (the base of every schema transform).

    A subclass writes :meth:`node`: given a schema and its place, it makes the new node and
    calls :meth:`children` to rebuild the subschemas the node holds (each by :meth:`node`
    again), before or after its own changes as it needs. Values that are not schemas where
    a schema may stand (``"additionalProperties": false``) go through :meth:`leaf`.
    """

    def node(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
        """The new node for ``schema`` (by default a copy with its subschemas rebuilt)."""
        return self.children(dict(schema), where)

    def leaf(self, value: Any) -> Any:
        """A value found where a schema may stand that is not one: kept as it is."""
        return value

    def children(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        """``node`` (changed in place and returned) with each subschema it holds replaced
        by its rebuilt node, in the walk's order; the keywords keep their places."""
        for key in _keywords_in(node):
            value = node[key]
            kind, place = _KIND[key]
            if kind is _ONE and isinstance(value, dict):
                node[key] = self.node(value, where + place)
            elif kind is _LIST and isinstance(value, list):
                numbered = bool(place)  # prefixItems: each member its own place
                node[key] = [
                    (self.node(item, f"{where}[{index}]" if numbered else where))
                    if isinstance(item, dict)
                    else self.leaf(item)
                    for index, item in enumerate(value)
                ]
            elif kind is _MAP and isinstance(value, dict):
                prefix = place if place != "." else where + place
                node[key] = {
                    name: self.node(sub, prefix + name) if isinstance(sub, dict) else self.leaf(sub)
                    for name, sub in value.items()
                }
            else:
                node[key] = self.leaf(value)
        return node
