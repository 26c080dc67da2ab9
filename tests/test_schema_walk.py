"""The one schema walk every schema job shares (``agentkit._schema_walk``).

The schemas the jobs produce are pinned by the tool corpus tests; these pin the walk itself:
it reaches every subschema under every keyword that holds one, it follows a change a job
makes to a node, a rebuild keeps each keyword in its place, and a job that stops at the
first problem names the same one however the schema's keywords are ordered.
"""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agentkit import ToolDefinitionError
from agentkit._schema_compact import compact_json_schema
from agentkit._schema_strict import to_strict_json_schema
from agentkit._schema_walk import SCHEMA_KEYWORDS, SchemaTransformer, nodes, subschemas

ONE = ["items", "additionalProperties", "not", "if", "then", "else", "contains"]
ONE += ["propertyNames", "unevaluatedItems", "unevaluatedProperties"]
LISTS = ["anyOf", "oneOf", "allOf", "prefixItems"]
MAPS = ["properties", "$defs", "definitions", "patternProperties", "dependentSchemas"]


def leaf(mark: str) -> dict[str, Any]:
    return {"type": "string", "description": mark}


def test_every_keyword_that_holds_schemas_is_walked() -> None:
    assert set(ONE + LISTS + MAPS) == SCHEMA_KEYWORDS
    schema: dict[str, Any] = {"type": "object"}
    for key in ONE:
        schema[key] = leaf(key)
    for key in LISTS:
        schema[key] = [leaf(f"{key}0"), True, leaf(f"{key}1")]  # True: not a schema to walk
    for key in MAPS:
        schema[key] = {"a": leaf(f"{key}.a"), "b": leaf(f"{key}.b")}
    schema["enum"] = [{"description": "a value, not a schema"}]
    seen = [str(node.get("description")) for node in nodes(schema)]
    expected = ONE + [f"{key}{i}" for key in LISTS for i in (0, 1)]
    expected += [f"{key}.{name}" for key in MAPS for name in "ab"]
    assert seen[0] == "None" and sorted(seen[1:]) == sorted(expected)
    assert len(list(subschemas(schema))) == len(expected)


def test_nodes_follow_a_change_made_to_the_node_they_gave() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "integer"}}}
    added = {"type": "object", "properties": {"deep": {"type": "string"}}}
    seen = []
    for node in nodes(schema):
        seen.append(node.get("type"))
        if node is schema:
            node["additionalProperties"] = added  # added before the walk goes in
    assert seen == ["object", "integer", "object", "string"]


class Marker(SchemaTransformer):
    """Writes each node's place into it: what a rebuild hands each subschema."""

    def node(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
        out = self.children(dict(schema), where)
        out["where"] = where
        return out


def test_a_rebuild_names_each_place_and_keeps_the_keywords_in_their_order() -> None:
    schema = {
        "$defs": {"Point": {"type": "object"}},
        "type": "object",
        "properties": {"tags": {"propertyNames": {"type": "string"}, "items": {}}},
        "prefixItems": [{}, {}],
        "anyOf": [{}],
        "additionalProperties": False,
    }
    original = copy.deepcopy(schema)
    out = Marker().node(schema, "parameters")
    assert schema == original  # the input is left alone
    assert list(out) == [*schema, "where"]
    assert out["$defs"]["Point"]["where"] == "$defs.Point"
    tags = out["properties"]["tags"]
    assert tags["where"] == "parameters.tags"
    assert tags["propertyNames"]["where"] == "parameters.tags{}"
    assert tags["items"]["where"] == "parameters.tags[]"
    assert [item["where"] for item in out["prefixItems"]] == ["parameters[0]", "parameters[1]"]
    assert out["anyOf"][0]["where"] == "parameters"
    assert out["additionalProperties"] is False


def untyped_parameter_and_definition(defs_first: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "properties": {"x": {"description": "anything"}},
        "required": ["x"],
    }
    defs: dict[str, Any] = {"$defs": {"D": {"description": "anything too"}}}
    parts = [defs, properties] if defs_first else [properties, defs]
    return {"type": "object", **parts[0], **parts[1]}


@pytest.mark.parametrize("defs_first", [False, True])
def test_strict_mode_names_the_first_problem_in_the_walks_order(defs_first: bool) -> None:
    with pytest.raises(ToolDefinitionError, match=r"needs a type at parameters\.x,"):
        to_strict_json_schema(untyped_parameter_and_definition(defs_first))


json_leaf = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number"])}),
    st.just({"type": "null"}),
)


def objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(st.text("abc", min_size=1, max_size=3), children, max_size=3).map(
            lambda props: {"type": "object", "properties": props, "required": sorted(props)[:1]}
        ),
        children.map(lambda item: {"type": "array", "items": item}),
        st.lists(children, min_size=1, max_size=3).map(lambda members: {"anyOf": members}),
    )


schemas = st.recursive(json_leaf, objects, max_leaves=12)


@given(schemas)
@example(  # a nullable of a nullable: the inner one merged first (it raised a TypeError)
    {
        "type": "array",
        "items": {"anyOf": [{"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": "null"}]},
    }
)
def test_the_jobs_never_change_their_input_and_give_json(schema: dict[str, Any]) -> None:
    top = {"type": "object", "properties": {"p": schema}, "required": ["p"]}
    before = json.dumps(top)
    compact = compact_json_schema(top)
    strict = to_strict_json_schema(top)
    assert json.dumps(top) == before
    # neither output shares a mutable part with the input: changing it leaves top alone
    for out in (compact, strict):
        json.loads(json.dumps(out))
    for node in nodes(compact):
        node["mutated"] = True
    assert json.dumps(top) == before


def test_a_parameter_nesting_one_optional_in_another_makes_a_tool() -> None:
    from pydantic import Field

    from agentkit import tool

    def name_all(names: list[Annotated[str | None, Field(description="a name")] | None]) -> str:
        """Name them."""
        return ""

    items = tool(name_all).to_openai()["function"]["parameters"]["properties"]["names"]["items"]
    assert items == {
        "anyOf": [{"type": ["string", "null"], "description": "a name"}, {"type": "null"}]
    }
