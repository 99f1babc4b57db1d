"""CRD structural schemas: pruning, defaulting and validation worded like kube-apiserver (1.35+)."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from devcluster import cel
from devcluster.errors import Cause, invalid
from devcluster.schema import (
    CompiledSchema,
    SchemaError,
    go_json,
    go_quote,
    validate_crd_schema_structural,
)

BLOCKED = Cause("FieldValueInvalid", "Invalid value: null: some validation rules were not checked because the "
                "object was invalid; correct the existing errors to complete validation", "<nil>")


def compiled(spec: dict[str, Any], **root: Any) -> CompiledSchema:
    return CompiledSchema.compile({"type": "object", "properties": {"spec": spec}, **root})


def errors(spec_schema: dict[str, Any], spec: Any, old_spec: Any = None) -> list[tuple[str, str, str]]:
    """Validate ``{"spec": spec}`` against ``spec_schema``; (field, reason, message) triples."""
    cs = compiled(spec_schema)
    old = {"spec": old_spec} if old_spec is not None else None
    return [(c.field, c.reason, c.message) for c in cs.validate({"spec": spec}, old)]


def obj_schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


# ------------------------------------------------------------------------------------------------
# Go rendering helpers
# ------------------------------------------------------------------------------------------------

def test_go_rendering_helpers() -> None:
    assert go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'
    assert go_json({"b": 1.5, "a": [1e21, 1e-7, 0.000001, 100.0, "<&>", None, True]}) == (
        '{"a":[1e+21,1e-7,0.000001,100,"\\u003c\\u0026\\u003e",null,true],"b":1.5}')
    assert [cel.format_go_float(f) for f in (5.0, 0.5, 123456.0, 1e6, 2000000.5, 1e-5, -2.25)] == [
        "5", "0.5", "123456", "1e+06", "2.0000005e+06", "1e-05", "-2.25"]


# ------------------------------------------------------------------------------------------------
# Types
# ------------------------------------------------------------------------------------------------

def test_type_mismatch_wording() -> None:
    schema = obj_schema(replicas={"type": "integer"})
    assert errors(schema, {"replicas": "string"}) == [
        ("spec.replicas", "FieldValueTypeInvalid",
         'Invalid value: "string": spec.replicas in body must be of type integer: "string"')]


@pytest.mark.parametrize(("type_", "value", "actual"), [
    ("integer", True, "boolean"), ("integer", [1], "array"), ("string", 1, "integer"),
    ("number", "1", "string"), ("boolean", "true", "string"), ("object", "x", "string"),
    ("array", {"a": 1}, "object"),
])
def test_every_type_is_checked(type_: str, value: Any, actual: str) -> None:
    schema = obj_schema(f={"type": type_, **({"items": {"type": "string"}} if type_ == "array" else {})})
    assert errors(schema, {"f": value}) == [
        ("spec.f", "FieldValueTypeInvalid", f'Invalid value: "{actual}": spec.f in body must be of type {type_}: '
                                            f'"{actual}"')]


def test_numbers_integers_and_floats() -> None:
    schema = obj_schema(n={"type": "number"}, i={"type": "integer"})
    assert errors(schema, {"n": 1, "i": 3}) == []
    assert errors(schema, {"n": 1.0, "i": 3.0}) == []  # integral floats are integers, ints are numbers
    assert errors(schema, {"i": 3.5}) == [
        ("spec.i", "FieldValueTypeInvalid", 'Invalid value: "number": spec.i in body must be of type integer: "number"'),
        ("<nil>", "FieldValueInvalid", 'Invalid value: "": Checked value must be of type integer (default format) '
                                       "in spec.i"),
    ]


def test_nullable() -> None:
    schema = obj_schema(a={"type": "string", "nullable": True}, b={"type": "string"})
    assert errors(schema, {"a": None}) == []
    assert errors(schema, {"b": None}) == [
        ("spec.b", "FieldValueTypeInvalid", 'Invalid value: "null": spec.b in body must be of type string: "null"')]


def test_int_or_string() -> None:
    schema = obj_schema(port={"x-kubernetes-int-or-string": True})
    assert errors(schema, {"port": 8080}) == []
    assert errors(schema, {"port": "http"}) == []
    assert errors(schema, {"port": True}) == [
        ("spec.port", "FieldValueTypeInvalid",
         'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"')]


def test_int_or_string_with_any_of_pattern() -> None:
    schema = obj_schema(size={"x-kubernetes-int-or-string": True,
                              "anyOf": [{"type": "integer"}, {"type": "string"}]})
    assert errors(schema, {"size": "10Gi"}) == []
    assert errors(schema, {"size": 3}) == []
    assert errors(schema, {"size": False})[1] == (
        "<nil>", "FieldValueInvalid", 'Invalid value: "": "spec.size" must validate at least one schema (anyOf)')


# ------------------------------------------------------------------------------------------------
# Value keywords
# ------------------------------------------------------------------------------------------------

def test_enum() -> None:
    schema = obj_schema(mode={"type": "string", "enum": ["a", "b"]}, n={"type": "integer", "enum": [1, 3, 5]})
    assert errors(schema, {"mode": "b", "n": 3}) == []
    assert errors(schema, {"mode": "x", "n": 2}) == [
        ("spec.mode", "FieldValueNotSupported", 'Unsupported value: "x": supported values: "a", "b"'),
        ("spec.n", "FieldValueNotSupported", 'Unsupported value: 2: supported values: "1", "3", "5"'),
    ]


def test_required() -> None:
    schema = {"type": "object", "required": ["name", "size"], "properties": {
        "name": {"type": "string"}, "size": {"type": "string"}}}
    assert errors(schema, {"size": "x"}) == [("spec.name", "FieldValueRequired", "Required value")]


def test_required_at_root() -> None:
    cs = CompiledSchema.compile({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}})
    assert cs.validate({"apiVersion": "v1", "kind": "K", "metadata": {"name": "x"}}) == [
        Cause("FieldValueRequired", "Required value", "spec")]


@pytest.mark.parametrize(("keyword", "value", "message"), [
    ({"maximum": 5}, 7, "Invalid value: 7: spec.r in body should be less than or equal to 5"),
    ({"maximum": 5, "exclusiveMaximum": True}, 5, "Invalid value: 5: spec.r in body should be less than 5"),
    ({"minimum": 1}, 0, "Invalid value: 0: spec.r in body should be greater than or equal to 1"),
    ({"minimum": 1, "exclusiveMinimum": True}, 1, "Invalid value: 1: spec.r in body should be greater than 1"),
    ({"multipleOf": 3}, 7, "Invalid value: 7: spec.r in body should be a multiple of 3"),
])
def test_integer_bounds(keyword: dict[str, Any], value: int, message: str) -> None:
    assert errors(obj_schema(r={"type": "integer", **keyword}), {"r": value}) == [
        ("spec.r", "FieldValueInvalid", message)]


def test_number_bounds_use_go_float_formatting() -> None:
    assert errors(obj_schema(r={"type": "number", "maximum": 1000000}), {"r": 2000000.5}) == [
        ("spec.r", "FieldValueInvalid",
         "Invalid value: 2.0000005e+06: spec.r in body should be less than or equal to 1e+06")]
    assert errors(obj_schema(r={"type": "number", "multipleOf": 0.5}), {"r": 0.7}) == [
        ("spec.r", "FieldValueInvalid", "Invalid value: 0.7: spec.r in body should be a multiple of 0.5")]
    assert errors(obj_schema(r={"type": "number", "multipleOf": 0.5}), {"r": 1.5}) == []


def test_strings() -> None:
    schema = obj_schema(s={"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"})
    assert errors(schema, {"s": "abcd"}) == []
    assert errors(schema, {"s": "ab"}) == [
        ("spec.s", "FieldValueInvalid", 'Invalid value: "ab": spec.s in body should be at least 3 chars long')]
    assert errors(schema, {"s": "abcdef"}) == [("spec.s", "FieldValueTooLong", "Too long: may not be more than 5 bytes")]
    assert errors(schema, {"s": "ABC"}) == [
        ("spec.s", "FieldValueInvalid", "Invalid value: \"ABC\": spec.s in body should match '^[a-z]+$'")]
    # lengths count characters, not bytes
    assert errors(schema, {"s": "ééé"}) == [
        ("spec.s", "FieldValueInvalid", "Invalid value: \"ééé\": spec.s in body should match '^[a-z]+$'")]


def test_formats() -> None:
    schema = obj_schema(t={"type": "string", "format": "date-time"}, d={"type": "string", "format": "date"},
                        u={"type": "string", "format": "uuid"}, x={"type": "string", "format": "no-such-format"},
                        i={"type": "integer", "format": "int32"}, ip={"type": "string", "format": "ipv4"})
    ok = {"t": "2024-01-02T03:04:05Z", "d": "2024-02-29", "u": "123e4567-e89b-12d3-a456-426614174000",
          "x": "anything", "i": 2**31 - 1, "ip": "10.0.0.1"}
    assert errors(schema, ok) == []
    assert errors(schema, {"t": "yesterday", "d": "2023-02-29", "ip": "10.0.0"}) == [
        ("spec.t", "FieldValueTypeInvalid",
         'Invalid value: "yesterday": spec.t in body must be of type date-time: "yesterday"'),
        ("spec.d", "FieldValueTypeInvalid", 'Invalid value: "2023-02-29": spec.d in body must be of type date: '
                                            '"2023-02-29"'),
        ("spec.ip", "FieldValueTypeInvalid", 'Invalid value: "10.0.0": spec.ip in body must be of type ipv4: '
                                             '"10.0.0"'),
    ]
    assert errors(schema, {"i": 2**31}) == [
        ("<nil>", "FieldValueInvalid",
         'Invalid value: "": Checked value must be of type integer with format int32 in spec.i')]


def test_arrays() -> None:
    schema = obj_schema(l={"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "string"}})
    assert errors(schema, {"l": ["a", "b"]}) == []
    assert errors(schema, {"l": ["a"]}) == [
        ("spec.l", "FieldValueInvalid", "Invalid value: 1: spec.l in body should have at least 2 items")]
    assert errors(schema, {"l": ["a", "b", "c", "d"]}) == [
        ("spec.l", "FieldValueTooMany", "Too many: 4: must have at most 3 items")]
    assert errors(schema, {"l": ["a", 1]}) == [
        ("spec.l[1]", "FieldValueTypeInvalid", 'Invalid value: "integer": spec.l[1] in body must be of type string: '
                                               '"integer"')]


def test_unique_items() -> None:
    schema = obj_schema(l={"type": "array", "uniqueItems": True, "items": {"type": "integer"}})
    # uniqueItems is refused when a CRD is written; the validator still implements it
    assert any("uniqueItems" in c.field for c in validate_crd_schema_structural(
        {"type": "object", "properties": {"spec": schema}}))
    from devcluster.schema import _Node, _OpenAPI

    v = _OpenAPI(None)
    v.validate({"spec": {"l": [1, 2, 1]}}, _Node({"type": "object", "properties": {"spec": schema}}), "", None)
    assert [e.cause() for e in v.errs] == [
        Cause("FieldValueInvalid", "Invalid value: \"\": spec.l in body shouldn't contain duplicates", "spec.l")]


def test_object_property_counts_and_additional_properties() -> None:
    schema = {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}}
    assert errors(schema, {"a": "x"}) == []
    assert errors(schema, {}) == [
        ("spec", "FieldValueInvalid", "Invalid value: 0: spec in body should have at least 1 properties")]
    assert errors(schema, {"a": "x", "b": "y", "c": 1}) == [
        ("spec", "FieldValueTooMany", "Too many: 3: must have at most 2 items"),
        ("spec.c", "FieldValueTypeInvalid", 'Invalid value: "integer": spec.c in body must be of type string: '
                                            '"integer"'),
    ]


def test_list_type_set_and_map() -> None:
    schema = obj_schema(
        tags={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        ports={"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
               "items": {"type": "object", "required": ["name"],
                         "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}})
    assert errors(schema, {"tags": ["a", "b"], "ports": [{"name": "a"}, {"name": "b"}]}) == []
    assert errors(schema, {"tags": ["a", "b", "a", "a"], "ports": [{"name": "a"}, {"name": "a", "port": 1}]}) == [
        ("spec.tags[2]", "FieldValueDuplicate", 'Duplicate value: "a"'),
        ("spec.ports[1]", "FieldValueDuplicate", 'Duplicate value: {"name":"a"}'),
    ]
    # a set distinguishes 1 from 1.0 and true, as Go does
    numbers = obj_schema(s={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "number"}})
    assert errors(numbers, {"s": [1, 1.5, 2]}) == []


def test_all_of_one_of_not() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
              "oneOf": [{"required": ["a"]}, {"required": ["b"]}], "not": {"required": ["c"]},
              "allOf": [{"properties": {"a": {"maxLength": 2}}}]}
    assert errors(schema, {"a": "x"}) == []
    assert errors(schema, {"a": "x", "b": "y"}) == [
        ("<nil>", "FieldValueInvalid",
         'Invalid value: "": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives')]
    assert errors(schema, {"a": "xyz"}) == [
        ("spec.a", "FieldValueTooLong", "Too long: may not be more than 2 bytes"),
        ("<nil>", "FieldValueInvalid", 'Invalid value: "": "spec" must validate all the schemas (allOf). None validated'),
    ]


def test_nested_error_paths_use_array_indices() -> None:
    schema = obj_schema(items={"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 3}, "ports": {"type": "array", "items": {"type": "integer"}}}}})
    spec = {"items": [{"name": "a"}, {"name": "b", "ports": [1, "x"]}, {}, {"name": "toolong"}]}
    assert errors(schema, spec) == [
        ("spec.items[1].ports[1]", "FieldValueTypeInvalid",
         'Invalid value: "string": spec.items[1].ports[1] in body must be of type integer: "string"'),
        ("spec.items[2].name", "FieldValueRequired", "Required value"),
        ("spec.items[3].name", "FieldValueTooLong", "Too long: may not be more than 3 bytes"),
    ]


def test_embedded_resource_type_meta() -> None:
    schema = obj_schema(template={"type": "object", "x-kubernetes-embedded-resource": True,
                                  "x-kubernetes-preserve-unknown-fields": True})
    assert errors(schema, {"template": {"apiVersion": "v1", "kind": "ConfigMap"}}) == []
    assert errors(schema, {"template": {"apiVersion": "a/b/c", "kind": "Bad_Kind"}}) == [
        ("spec.template.apiVersion", "FieldValueInvalid", 'Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c'),
        ("spec.template.kind", "FieldValueInvalid",
         'Invalid value: "Bad_Kind": may have mixed case, but should otherwise match: a DNS-1035 label must consist '
         "of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an "
         "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
         "'[a-z]([-a-z0-9]*[a-z0-9])?')"),
    ]
    assert errors(schema, {"template": {}}) == [
        ("spec.template.apiVersion", "FieldValueRequired", "Required value"),
        ("spec.template.kind", "FieldValueRequired", "Required value"),
    ]


# ------------------------------------------------------------------------------------------------
# Pruning
# ------------------------------------------------------------------------------------------------

def test_prune_nested_unknown_fields_keeps_type_meta_and_object_meta() -> None:
    cs = compiled(obj_schema(a={"type": "object", "properties": {"b": {"type": "string"}}},
                             l={"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}}))
    obj = {"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}, "bogus": 1,
                                                            "annotations": {}},
           "spec": {"a": {"b": "x", "c": 1}, "l": [{"x": 1, "y": 2}], "zz": True}, "status": {"s": 1}, "top": 1}
    assert cs.prune(obj) is obj
    assert obj == {"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
                   "spec": {"a": {"b": "x"}, "l": [{"x": 1}]}}


def test_prune_reports_unknown_field_paths_for_strict_field_validation() -> None:
    cs = compiled(obj_schema(
        a={"type": "object", "properties": {"b": {"type": "string"}}},
        l={"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        t={"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True}))
    obj = {"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "n", "zeta": 1, "alpha": 2},
           "spec": {"zz": 1, "a": {"c": 1, "b": "x"}, "l": [{"x": 1}, {"y": 2}],
                    "t": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bad": 1}}}, "status": {}}
    unknown: list[str] = []
    cs.prune(obj, unknown)
    assert unknown == ["metadata.zeta", "metadata.alpha", "spec.a.c", "spec.l[1].y", "spec.zz", "status",
                       "spec.t.metadata.bad"]
    assert obj["spec"]["t"]["metadata"] == {"name": "p"}


def test_prune_preserve_unknown_fields() -> None:
    cs = compiled({"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
        "known": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    obj = {"spec": {"anything": {"goes": [1, {"x": 2}]}, "known": {"a": "x", "b": "pruned"}}}
    cs.prune(obj)
    assert obj == {"spec": {"anything": {"goes": [1, {"x": 2}]}, "known": {"a": "x"}}}


def test_prune_embedded_resource() -> None:
    cs = compiled(obj_schema(template={
        "type": "object", "x-kubernetes-embedded-resource": True,
        "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}))
    obj = {"spec": {"template": {"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": "x", "labels": {"a": "b"}, "nonsense": 1},
                                 "spec": {"replicas": 1, "selector": {}}, "status": {}}}}
    cs.prune(obj)
    assert obj == {"spec": {"template": {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "metadata": {"name": "x", "labels": {"a": "b"}},
                                         "spec": {"replicas": 1}}}}


def test_prune_additional_properties_and_nulls() -> None:
    cs = compiled(obj_schema(
        m={"type": "object", "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}}},
        n={"type": "string"}, nn={"type": "string", "nullable": True}, d={"type": "string", "default": "x"}))
    obj = {"spec": {"m": {"k": {"a": "1", "b": "2"}}, "n": None, "nn": None, "d": None}}
    cs.prune(obj)
    # non-nullable null without default: dropped; nullable null: kept; null with a default: left for defaulting
    assert obj == {"spec": {"m": {"k": {"a": "1"}}, "nn": None, "d": None}}
    cs.default(obj)
    assert obj["spec"]["d"] == "x"


# ------------------------------------------------------------------------------------------------
# Defaulting
# ------------------------------------------------------------------------------------------------

def test_default_nested_objects_and_defaults_inside_defaults() -> None:
    cs = compiled(obj_schema(
        storage={"type": "object", "default": {}, "properties": {
            "size": {"type": "string", "default": "10Gi"},
            "class": {"type": "object", "default": {"name": "standard"},
                      "properties": {"name": {"type": "string"}, "reclaim": {"type": "string", "default": "Delete"}}}}},
        replicas={"type": "integer", "default": 3},
        nullable={"type": "string", "nullable": True, "default": "d"}))
    obj: dict[str, Any] = {"spec": {"nullable": None}}
    cs.default(obj)
    assert obj == {"spec": {"storage": {"size": "10Gi", "class": {"name": "standard", "reclaim": "Delete"}},
                            "replicas": 3, "nullable": None}}
    obj2 = {"spec": {"replicas": 1, "storage": {"size": "1Gi"}}}
    cs.default(obj2)
    assert obj2["spec"] == {"replicas": 1, "nullable": "d",
                            "storage": {"size": "1Gi", "class": {"name": "standard", "reclaim": "Delete"}}}


def test_default_under_array_items_and_maps() -> None:
    cs = compiled(obj_schema(
        listeners={"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "port": {"type": "integer", "default": 9092},
            "tls": {"type": "object", "default": {}, "properties": {"enabled": {"type": "boolean", "default": False}}}}}},
        pools={"type": "object", "additionalProperties": {"type": "object", "properties": {
            "size": {"type": "integer", "default": 1}}}}))
    obj = {"spec": {"listeners": [{"name": "a"}, {"name": "b", "port": 1}], "pools": {"x": {}}}}
    cs.default(obj)
    assert obj["spec"] == {
        "listeners": [{"name": "a", "port": 9092, "tls": {"enabled": False}},
                      {"name": "b", "port": 1, "tls": {"enabled": False}}],
        "pools": {"x": {"size": 1}}}


def test_default_values_are_copies() -> None:
    cs = compiled(obj_schema(l={"type": "array", "items": {"type": "string"}, "default": ["a"]}))
    a, b = {"spec": {}}, {"spec": {}}
    cs.default(a)
    cs.default(b)
    a["spec"]["l"].append("b")
    assert b["spec"]["l"] == ["a"]


# ------------------------------------------------------------------------------------------------
# CEL rules
# ------------------------------------------------------------------------------------------------

REPLICAS_RULES = {"type": "object", "x-kubernetes-validations": [
    {"rule": "self.replicas % 2 == 1", "message": "replicas must be odd"},
    {"rule": "self.minInsync < self.replicationFactor"},
], "properties": {"replicas": {"type": "integer"}, "minInsync": {"type": "integer"},
                  "replicationFactor": {"type": "integer"}}}


def test_cel_rules_on_an_object() -> None:
    assert errors(REPLICAS_RULES, {"replicas": 3, "minInsync": 2, "replicationFactor": 3}) == []
    # failures on objects omit the value (kube-apiserver >= 1.35)
    assert errors(REPLICAS_RULES, {"replicas": 4, "minInsync": 3, "replicationFactor": 3}) == [
        ("spec", "FieldValueInvalid", "Invalid value: replicas must be odd"),
        ("spec", "FieldValueInvalid", "Invalid value: failed rule: self.minInsync < self.replicationFactor"),
    ]


def test_cel_runtime_error_names_the_rule() -> None:
    assert errors(REPLICAS_RULES, {"replicas": 3}) == [
        ("spec", "FieldValueInvalid", 'Invalid value: "object": no such key: minInsync evaluating rule: '
                                      "self.minInsync < self.replicationFactor")]


def test_cel_on_scalars_prints_the_value() -> None:
    schema = obj_schema(replicas={"type": "integer", "x-kubernetes-validations": [{"rule": "self % 2 == 1"}]},
                        name={"type": "string", "x-kubernetes-validations": [
                            {"rule": "self.startsWith('kafka-')", "message": "must start with kafka-"}]})
    assert errors(schema, {"replicas": 2, "name": "zk"}) == [
        ("spec.replicas", "FieldValueInvalid", "Invalid value: 2: failed rule: self % 2 == 1"),
        ("spec.name", "FieldValueInvalid", 'Invalid value: "zk": must start with kafka-'),
    ]


def test_cel_transition_rule_integer_storage_never_shrinks() -> None:
    schema = obj_schema(storageGi={"type": "integer", "x-kubernetes-validations": [
        {"rule": "self >= oldSelf", "message": "storage may not shrink"}]})
    assert errors(schema, {"storageGi": 10}) == []  # create: no old value, transition rule skipped
    assert errors(schema, {"storageGi": 20}, {"storageGi": 10}) == []
    assert errors(schema, {"storageGi": 5}, {"storageGi": 10}) == [
        ("spec.storageGi", "FieldValueInvalid", "Invalid value: 5: storage may not shrink")]
    assert errors(schema, {"storageGi": 5}, {}) == []  # the field is new: nothing to compare with


def test_cel_transition_rule_on_string() -> None:
    schema = obj_schema(version={"type": "string", "x-kubernetes-validations": [
        {"rule": "self >= oldSelf", "message": "version may not go backwards"},
        {"rule": "self == oldSelf", "message": "immutable", "reason": "FieldValueForbidden"}]})
    assert errors(schema, {"version": "3.7"}, {"version": "3.6"}) == [
        ("spec.version", "FieldValueForbidden", "Forbidden: immutable")]
    assert errors(schema, {"version": "3.5"}, {"version": "3.6"}) == [
        ("spec.version", "FieldValueInvalid", 'Invalid value: "3.5": version may not go backwards'),
        ("spec.version", "FieldValueForbidden", "Forbidden: immutable")]


def test_cel_old_self_is_the_correlated_old_value_in_map_lists() -> None:
    schema = obj_schema(disks={
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf",
                                                                      "message": "may not shrink"}]}}}})
    old = {"disks": [{"name": "a", "size": 10}, {"name": "b", "size": 10}]}
    new = {"disks": [{"name": "b", "size": 5}, {"name": "a", "size": 20}, {"name": "c", "size": 1}]}
    assert errors(schema, new, old) == [("spec.disks[0].size", "FieldValueInvalid", "Invalid value: 5: may not shrink")]


def test_cel_message_expression_field_path_and_reason() -> None:
    schema = {"type": "object", "properties": {"replicas": {"type": "integer"}, "max": {"type": "integer"}},
              "x-kubernetes-validations": [
                  {"rule": "self.replicas <= self.max", "fieldPath": ".replicas", "reason": "FieldValueRequired",
                   "messageExpression": "'replicas ' + string(self.replicas) + ' exceeds ' + string(self.max)"},
                  {"rule": "self.max < 100", "messageExpression": "'max ' + string(self.max / 0)",
                   "message": "max too large"}]}
    assert errors(schema, {"replicas": 101, "max": 100}) == [
        ("spec.replicas", "FieldValueRequired", "Required value: replicas 101 exceeds 100"),
        ("spec", "FieldValueInvalid", "Invalid value: max too large"),  # messageExpression failed: falls back
    ]


def test_cel_rules_on_arrays_and_maps() -> None:
    schema = obj_schema(
        brokers={"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}},
                 "x-kubernetes-validations": [{"rule": "self.all(b, b.id >= 0)", "message": "ids must be >= 0"},
                                              {"rule": "size(self) <= 3"}]},
        labels={"type": "object", "additionalProperties": {"type": "string"},
                "x-kubernetes-validations": [{"rule": "self.all(k, k.startsWith('x-'))",
                                              "messageExpression": "'bad keys: ' + self.filter(k, "
                                                                   "!k.startsWith('x-')).join(', ')"},
                                             {"rule": "'x-team' in self", "message": "x-team label required"}]},
        limits={"type": "object", "additionalProperties": {"type": "integer", "x-kubernetes-validations": [
            {"rule": "self > 0"}]}})
    spec = {"brokers": [{"id": 1}, {"id": -1}, {"id": 2}, {"id": 3}], "labels": {"x-a": "1", "b": "2", "c": "3"},
            "limits": {"cpu": 1, "mem": 0}}
    assert errors(schema, spec) == [
        ("spec.brokers", "FieldValueInvalid", "Invalid value: ids must be >= 0"),
        ("spec.brokers", "FieldValueInvalid", "Invalid value: failed rule: size(self) <= 3"),
        ("spec.labels", "FieldValueInvalid", "Invalid value: bad keys: b, c"),
        ("spec.labels", "FieldValueInvalid", "Invalid value: x-team label required"),
        ("spec.limits[mem]", "FieldValueInvalid", "Invalid value: 0: failed rule: self > 0"),
    ]


def test_cel_has_and_string_functions() -> None:
    schema = {"type": "object", "properties": {"tls": {"type": "object", "properties": {
        "enabled": {"type": "boolean"}, "secret": {"type": "string"}}}, "name": {"type": "string"}},
        "x-kubernetes-validations": [
            {"rule": "!has(self.tls) || !self.tls.enabled || has(self.tls.secret)", "message": "tls needs secret"},
            {"rule": "self.name.matches('^[a-z-]+$') && self.name.size() < 10 && self.name.lowerAscii() == self.name"
                     " && self.name.split('-').size() <= 2 && !self.name.contains('--') && self.name.endsWith('a')"},
        ]}
    assert errors(schema, {"name": "kafka", "tls": {"enabled": False}}) == []
    assert errors(schema, {"name": "my-kafka-x", "tls": {"enabled": True}}) == [
        ("spec", "FieldValueInvalid", "Invalid value: tls needs secret"),
        ("spec", "FieldValueInvalid", "Invalid value: failed rule: self.name.matches('^[a-z-]+$') && "
                                      "self.name.size() < 10 && self.name.lowerAscii() == self.name && "
                                      "self.name.split('-').size() <= 2 && !self.name.contains('--') && "
                                      "self.name.endsWith('a')"),
    ]


def test_cel_escaped_property_names_and_root_rules() -> None:
    cs = CompiledSchema.compile({
        "type": "object", "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('k') && self.kind == 'Kafka'", "message": "bad name"},
            {"rule": "self.spec.__namespace__ == 'ns' && self.spec.foo__dash__bar == 1"}],
        "properties": {"spec": {"type": "object", "properties": {"namespace": {"type": "string"},
                                                                 "foo-bar": {"type": "integer"}}}}})
    good = {"apiVersion": "x/v1", "kind": "Kafka", "metadata": {"name": "kk", "uid": "1"},
            "spec": {"namespace": "ns", "foo-bar": 1}}
    assert cs.validate(good) == []
    bad = copy.deepcopy(good)
    bad["metadata"]["name"] = "zz"
    assert cs.validate(bad) == [Cause("FieldValueInvalid", "Invalid value: bad name", "<nil>")]


def test_cel_two_variable_comprehensions_sets_and_list_extensions() -> None:
    schema = obj_schema(
        weights={"type": "object", "additionalProperties": {"type": "integer"}, "x-kubernetes-validations": [
            {"rule": "self.all(k, v, v >= 0 && k.size() < 10)", "message": "bad weight"},
            {"rule": "self.transformMap(k, v, v * 2).all(k, self[k] * 2 < 100)", "message": "too heavy"}]},
        zones={"type": "array", "items": {"type": "string"}, "x-kubernetes-validations": [
            {"rule": "self.all(i, z, i == 0 || z > self[i - 1])", "message": "zones must be sorted"},
            {"rule": "sets.contains(['a', 'b', 'c'], self)", "message": "unknown zone"},
            {"rule": "self.distinct().size() == self.size() && self.sort() == self"}]})
    assert errors(schema, {"weights": {"a": 1, "b": 2}, "zones": ["a", "b"]}) == []
    assert errors(schema, {"weights": {"a": -1, "b": 60}, "zones": ["b", "a", "d"]}) == [
        ("spec.weights", "FieldValueInvalid", "Invalid value: bad weight"),
        ("spec.weights", "FieldValueInvalid", "Invalid value: too heavy"),
        ("spec.zones", "FieldValueInvalid", "Invalid value: zones must be sorted"),
        ("spec.zones", "FieldValueInvalid", "Invalid value: unknown zone"),
        ("spec.zones", "FieldValueInvalid",
         "Invalid value: failed rule: self.distinct().size() == self.size() && self.sort() == self"),
    ]


@pytest.mark.parametrize("rule", [
    "self.missing > 0 || true",           # errors are absorbed when the other side decides
    "false || !(self.missing > 0 && false)",
    "-7 / 2 == -3 && -7 % 2 == -1",       # Go's truncating division
    "[1, 2, 3].exists(x, x / (x - 1) > 1)",  # 1/0 errors, but 3/2 == 1 ... and 2/1 == 2 decides
    "self.timeout < duration('1h') && self.start < self.end && self.start.getFullYear() == 2024",
    "string(1.5) == '1.5' && int('42') == 42 && double(2) == 2.0 && 3u > 2u",
    "'a,b'.split(',') == ['a', 'b'] && 'Hello'.lowerAscii() == 'hello' && '  x '.trim() == 'x'",
    "'abc'.indexOf('c') == 2 && 'abc'.substring(1) == 'bc' && 'abc'.charAt(0) == 'a'",
    "[3, 1, 2].min() == 1 && [1, 2].sum() == 3 && ['b', 'a'].isSorted() == false",
    "'x-1'.find('[0-9]+') == '1' && 'a1b22'.findAll('[0-9]+') == ['1', '22']",
    "type(self.missing) == int || type('s') == string",
])
def test_cel_semantics(rule: str) -> None:
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": rule}], "properties": {
        "missing": {"type": "integer"}, "timeout": {"type": "string", "format": "duration"},
        "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"}}}
    spec = {"timeout": "30m", "start": "2024-01-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}
    assert errors(schema, spec) == []


@pytest.mark.parametrize(("rule", "message"), [
    ("self.n * 9223372036854775807 > 0", "integer overflow evaluating rule: self.n * 9223372036854775807 > 0"),
    ("self.n / 0 == 1", "division by zero evaluating rule: self.n / 0 == 1"),
    ("[1][self.n] == 1", "index out of bounds: 2 evaluating rule: [1][self.n] == 1"),
    ("self.n + 'x' == 'y'", "'no such overload': call arguments did not match a supported operator, "
                            "function or macro signature for rule: self.n + 'x' == 'y'"),
])
def test_cel_runtime_errors(rule: str, message: str) -> None:
    schema = {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True},
              "x-kubernetes-validations": [{"rule": rule}]}
    assert errors(schema, {"n": 2}) == [("spec", "FieldValueInvalid", f'Invalid value: "object": {message}')]


def test_cel_unimplemented_kubernetes_libraries_compile_and_pass() -> None:
    schema = obj_schema(size={"type": "string", "x-kubernetes-validations": [
        {"rule": "semver(self).isLessThan(semver('10.0.0'))", "message": "too new"},
        {"rule": "isURL(self) || self.startsWith('/')"}]})
    assert validate_crd_schema_structural(obj_schema(spec=schema)) == []
    assert errors(schema, {"size": "1Ti"}) == []


def test_schema_errors_block_cel() -> None:
    schema = obj_schema(r={"type": "integer", "enum": [1], "x-kubernetes-validations": [{"rule": "self > 5"}]})
    cs = compiled(schema)
    assert cs.validate({"spec": {"r": 2}}) == [
        Cause("FieldValueNotSupported", 'Unsupported value: 2: supported values: "1"', "spec.r"), BLOCKED]


def test_cel_ratcheting_unchanged_values() -> None:
    schema = obj_schema(
        a={"type": "integer", "maximum": 3, "x-kubernetes-validations": [{"rule": "self != 5"}]},
        b={"type": "integer"})
    assert errors(schema, {"a": 5, "b": 2}) != []
    assert errors(schema, {"a": 5, "b": 2}, {"a": 5, "b": 1}) == []  # a is unchanged: its errors ratchet
    assert errors(schema, {"a": 6, "b": 2}, {"a": 5, "b": 1}) == [
        ("spec.a", "FieldValueInvalid", "Invalid value: 6: spec.a in body should be less than or equal to 3")]


def test_status_old_self_uses_the_old_objects_status() -> None:
    cs = CompiledSchema.compile({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "status": {"type": "object", "properties": {"observed": {"type": "integer", "x-kubernetes-validations": [
            {"rule": "self >= oldSelf", "message": "observed generation went backwards"}]}}}}})
    old = {"spec": {"x": 1}, "status": {"observed": 4}}
    assert cs.validate({"spec": {"x": 2}, "status": {"observed": 3}}, old) == [
        Cause("FieldValueInvalid", "Invalid value: 3: observed generation went backwards", "status.observed")]


def test_status_subresource_validates_only_status_relative_to_its_schema() -> None:
    cs = CompiledSchema.compile({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "maximum": 3}}},
        "status": {"type": "object", "required": ["phase"], "properties": {
            "phase": {"type": "string", "enum": ["Ready", "Pending"]}, "replicas": {"type": "integer"}}}}})
    old = {"spec": {"replicas": 5}, "status": {"phase": "Ready"}}  # spec became invalid before a schema change
    new = {"spec": {"replicas": 5}, "status": {"phase": "Broken", "replicas": "x"}}
    assert cs.validate(new, old, subresource="status") == [
        Cause("FieldValueNotSupported", 'Unsupported value: "Broken": supported values: "Ready", "Pending"',
              "status.phase"),
        Cause("FieldValueTypeInvalid", 'Invalid value: "string": replicas in body must be of type integer: "string"',
              "status.replicas"),
    ]
    assert cs.validate({"spec": {"replicas": 5}, "status": {}}, old, subresource="status") == [
        Cause("FieldValueRequired", "Required value", "status.phase")]
    # the main resource validates everything, with paths from the root
    assert cs.validate(new)[0] == Cause("FieldValueInvalid", "Invalid value: 5: spec.replicas in body should be less "
                                                             "than or equal to 3", "spec.replicas")


# ------------------------------------------------------------------------------------------------
# CRD-time checks
# ------------------------------------------------------------------------------------------------

P = "spec.versions[0].schema.openAPIV3Schema"


def crd_errors(schema: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c.field, c.reason, c.message) for c in validate_crd_schema_structural(schema, P)]


def test_structural_types_required() -> None:
    assert crd_errors({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}},
                                                        "list": {"type": "array", "items": {}}}}) == [
        (f"{P}.properties[list].items.type", "FieldValueRequired",
         "Required value: must not be empty for specified array items"),
        (f"{P}.properties[spec].type", "FieldValueRequired",
         "Required value: must not be empty for specified object fields"),
    ]
    assert crd_errors({"type": "object", "properties": {"any": {"x-kubernetes-preserve-unknown-fields": True},
                                                        "port": {"x-kubernetes-int-or-string": True}}}) == []


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "object", "properties": {"s": {"type": "object", "properties": {"a": {"type": "string"}},
                                              "additionalProperties": {"type": "string"}}}},
     (f"{P}.properties[s].additionalProperties", "FieldValueForbidden",
      "Forbidden: additionalProperties and properties are mutual exclusive")),
    ({"type": "object", "additionalProperties": {"type": "string"}},
     (f"{P}.additionalProperties", "FieldValueForbidden", "Forbidden: must not be used at the root")),
    ({"type": "object", "properties": {"s": {"type": "array"}}},
     (f"{P}.properties[s].items", "FieldValueRequired", "Required value: must be specified")),
    ({"type": "object", "properties": {"s": {"type": "array", "uniqueItems": True, "items": {"type": "string"}}}},
     (f"{P}.properties[s].uniqueItems", "FieldValueForbidden",
      "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic")),
    ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}},
     (f"{P}.properties[metadata]", "FieldValueForbidden", "Forbidden: must not specify anything other than name and "
                                                          "generateName, but metadata is implicitly specified")),
    ({"type": "object", "properties": {"s": {"type": "foo"}}},
     (f"{P}.properties[s].type", "FieldValueNotSupported",
      'Unsupported value: "foo": supported values: "array", "boolean", "integer", "number", "object", "string"')),
    ({"type": "object", "properties": {"s": {"type": "array", "x-kubernetes-list-type": "map",
                                             "items": {"type": "object", "properties": {"n": {"type": "string"}}}}}},
     (f"{P}.properties[s].x-kubernetes-list-map-keys", "FieldValueRequired",
      "Required value: must not be empty if x-kubernetes-list-type is map")),
    ({"type": "object", "properties": {"s": {"type": "object", "anyOf": [{"type": "string"}]}}},
     (f"{P}.properties[s].anyOf[0].type", "FieldValueForbidden", "Forbidden: must be empty to be structural")),
    ({"type": "string"}, (f"{P}.type", "FieldValueInvalid", 'Invalid value: "string": must be object at the root')),
])
def test_structural_violations(schema: dict[str, Any], expected: tuple[str, str, str]) -> None:
    assert expected in crd_errors(schema)
    with pytest.raises(SchemaError) as info:
        CompiledSchema.compile(schema)
    assert isinstance(info.value, ValueError)
    assert info.value.causes


def test_invalid_and_unpruned_defaults() -> None:
    assert crd_errors(obj_schema(spec=obj_schema(r={"type": "integer", "default": "x"}))) == [
        (f"{P}.properties[spec].properties[r].default", "FieldValueTypeInvalid",
         'Invalid value: "string":  in body must be of type integer: "string"')]
    assert crd_errors(obj_schema(spec=obj_schema(r={**obj_schema(a={"type": "integer"}), "default": {"b": 1}}))) == [
        (f"{P}.properties[spec].properties[r].default", "FieldValueInvalid",
         'Invalid value: {"b":1}: must not have unknown fields')]


def test_cel_compile_errors() -> None:
    schema = obj_schema(spec={**obj_schema(replicas={"type": "integer"}), "x-kubernetes-validations": [
        {"rule": "self.replcas > 1"}, {"rule": "self.replicas >"}, {"rule": "self.replicas"},
        {"rule": "self.replicas + 'x' == 1"}, {"rule": "foo(self)"},
        {"rule": "self.replicas > 1", "messageExpression": "self.replicas"}]})
    prefix = f"{P}.properties[spec].x-kubernetes-validations"
    got = crd_errors(schema)
    assert got[0] == (
        f"{prefix}[0].rule", "FieldValueInvalid",
        'Invalid value: {"Rule":"self.replcas \\u003e 1","Message":"","MessageExpression":"","Reason":null,'
        '"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:5: undefined field '
        "'replcas'\n | self.replcas > 1\n | ....^")
    assert got[1][2].endswith("compilation failed: ERROR: <input>:1:16: Syntax error: mismatched input '<EOF>'\n"
                              " | self.replicas >\n | ...............^")
    assert got[2][2].endswith(": cel expression must evaluate to a bool")
    assert "found no matching overload for '_+_' applied to '(int, string)'" in got[3][2]
    assert "undeclared reference to 'foo' (in container '')" in got[4][2]
    assert got[5][0] == f"{prefix}[5].messageExpression"
    assert got[5][2].endswith(": messageExpression must evaluate to a string")
    assert len(got) == 6


def test_old_self_refused_on_uncorrelatable_items() -> None:
    schema = obj_schema(l={"type": "array", "items": {"type": "integer", "x-kubernetes-validations": [
        {"rule": "self >= oldSelf"}]}})
    assert crd_errors(schema) == [
        (f"{P}.properties[l].items.x-kubernetes-validations[0].rule", "FieldValueInvalid",
         f'Invalid value: "self >= oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema '
         f"within {P}.properties[l]")]


def test_schema_error_feeds_the_invalid_status() -> None:
    with pytest.raises(SchemaError) as info:
        CompiledSchema.compile({"type": "object", "properties": {"spec": {"properties": {}}}},
                               path=f"{P}")
    err = invalid("CustomResourceDefinition", "apiextensions.k8s.io", "kafkas.ballast.dev", info.value.causes)
    assert err.message == ('CustomResourceDefinition.apiextensions.k8s.io "kafkas.ballast.dev" is invalid: '
                           f"{P}.properties[spec].type: Required value: must not be empty for specified object fields")


# ------------------------------------------------------------------------------------------------
# End to end: a KafkaCluster CRD
# ------------------------------------------------------------------------------------------------

KAFKA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {
            "type": "object", "required": ["brokers"],
            "x-kubernetes-validations": [
                {"rule": "self.minInsync < self.replicationFactor",
                 "messageExpression": "'minInsync (' + string(self.minInsync) + ') must be below replicationFactor "
                                      "(' + string(self.replicationFactor) + ')'"},
                {"rule": "self.replicationFactor <= self.brokers.replicas",
                 "message": "replicationFactor cannot exceed the number of brokers", "fieldPath": ".replicationFactor"},
            ],
            "properties": {
                "version": {"type": "string", "default": "3.7.0", "pattern": r"^\d+\.\d+\.\d+$"},
                "replicationFactor": {"type": "integer", "minimum": 1, "default": 3},
                "minInsync": {"type": "integer", "minimum": 1, "default": 2},
                "brokers": {"type": "object", "required": ["replicas"], "properties": {
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 99},
                    "storage": {"type": "object", "default": {}, "properties": {
                        "size": {"type": "string", "default": "100Gi", "pattern": r"^[0-9]+(Mi|Gi|Ti)$",
                                 "x-kubernetes-validations": [{
                                     "rule": "int(self.substring(0, size(self) - 2)) * "
                                             "(self.endsWith('Ti') ? 1048576 : self.endsWith('Gi') ? 1024 : 1) >= "
                                             "int(oldSelf.substring(0, size(oldSelf) - 2)) * "
                                             "(oldSelf.endsWith('Ti') ? 1048576 : oldSelf.endsWith('Gi') ? 1024 : 1)",
                                     "message": "storage size may not shrink"}]},
                        "class": {"type": "string"}}},
                    "config": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}},
                }},
                "controllers": {"type": "object", "default": {}, "properties": {
                    "replicas": {"type": "integer", "enum": [1, 3, 5], "default": 3}}},
                "listeners": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                              "items": {"type": "object", "required": ["name", "port"], "properties": {
                                  "name": {"type": "string", "maxLength": 20},
                                  "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
                                  "tls": {"type": "boolean", "default": False}}}},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def kafka(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ballast.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": "prod", "namespace": "kafka", "annotations": {"a": "b"}}, "spec": spec}


def pipeline(cs: CompiledSchema, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    return cs.validate(cs.default(cs.prune(obj)), old)


def test_kafka_cluster_end_to_end() -> None:
    assert validate_crd_schema_structural(KAFKA_SCHEMA) == []
    cs = CompiledSchema.compile(KAFKA_SCHEMA)

    obj = kafka(brokers={"replicas": 3, "unknownKnob": True, "config": {"log.retention.hours": 168}},
                listeners=[{"name": "plain", "port": 9092}], typo=1)
    assert pipeline(cs, obj) == []
    assert obj["spec"] == {
        "version": "3.7.0", "replicationFactor": 3, "minInsync": 2,
        "brokers": {"replicas": 3, "storage": {"size": "100Gi"}, "config": {"log.retention.hours": 168}},
        "controllers": {"replicas": 3}, "listeners": [{"name": "plain", "port": 9092, "tls": False}]}

    bad = kafka(brokers={"replicas": 2, "storage": {"size": "1TB"}}, controllers={"replicas": 4},
                listeners=[{"name": "plain", "port": 80}, {"name": "plain", "port": 9093}], minInsync=3)
    causes = pipeline(cs, bad)
    assert causes == [
        Cause("FieldValueInvalid", "Invalid value: \"1TB\": spec.brokers.storage.size in body should match "
                                   "'^[0-9]+(Mi|Gi|Ti)$'", "spec.brokers.storage.size"),
        Cause("FieldValueNotSupported", 'Unsupported value: 4: supported values: "1", "3", "5"',
              "spec.controllers.replicas"),
        Cause("FieldValueInvalid", "Invalid value: 80: spec.listeners[0].port in body should be greater than or "
                                   "equal to 1024", "spec.listeners[0].port"),
        Cause("FieldValueDuplicate", 'Duplicate value: {"name":"plain"}', "spec.listeners[1]"),
        BLOCKED,
    ]
    err = invalid("KafkaCluster", "ballast.dev", "prod", causes)
    assert err.message.startswith('KafkaCluster.ballast.dev "prod" is invalid: [spec.brokers.storage.size: Invalid '
                                  'value: "1TB": ')

    rules = kafka(brokers={"replicas": 2}, minInsync=3)
    assert pipeline(cs, rules) == [
        Cause("FieldValueInvalid", "Invalid value: minInsync (3) must be below replicationFactor (3)", "spec"),
        Cause("FieldValueInvalid", "Invalid value: replicationFactor cannot exceed the number of brokers",
              "spec.replicationFactor"),
    ]

    old = kafka(brokers={"replicas": 3, "storage": {"size": "1Ti"}})
    pipeline(cs, old)
    grow = copy.deepcopy(old)
    grow["spec"]["brokers"]["storage"]["size"] = "2048Gi"
    assert cs.validate(grow, old) == []
    shrink = copy.deepcopy(old)
    shrink["spec"]["brokers"]["storage"]["size"] = "500Gi"
    assert cs.validate(shrink, old) == [
        Cause("FieldValueInvalid", 'Invalid value: "500Gi": storage size may not shrink', "spec.brokers.storage.size")]


def test_validation_of_a_50_field_object_is_fast() -> None:
    props = {f"field{i}": {"type": "integer", "minimum": 0} if i % 3 == 0 else
             {"type": "string", "maxLength": 64} if i % 3 == 1 else
             {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "number"}}}
             for i in range(50)}
    spec_schema = {"type": "object", "properties": props, "x-kubernetes-validations": [
        {"rule": "self.field0 < 1000"}, {"rule": "self.field1.size() > 0"}]}
    cs = compiled(spec_schema)
    spec = {f"field{i}": i if i % 3 == 0 else f"value-{i}" if i % 3 == 1 else {"a": True, "b": 1.5}
            for i in range(50)}
    obj = {"spec": spec}
    assert cs.validate(obj) == []
    assert cs.validate(obj, copy.deepcopy(obj)) == []
    runs = 300
    start = time.perf_counter()
    for _ in range(runs):
        cs.validate(obj)
    per_call = (time.perf_counter() - start) / runs
    assert per_call < 1e-3, f"validate took {per_call * 1e6:.0f} µs"
