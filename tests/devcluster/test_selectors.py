"""Label and field selectors: grammar, matching semantics and kube-apiserver's exact error text.

Expected messages are the ones produced by k8s.io/apimachinery/pkg/labels/selector.go,
pkg/fields/selector.go and the per-kind field label conversion functions of kube-apiserver 1.35+.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devcluster.errors import ApiError
from devcluster.selectors import (
    DOES_NOT_EXIST,
    DOUBLE_EQUALS,
    EQUALS,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_EQUALS,
    NOT_IN,
    FieldSelector,
    LabelSelector,
    Requirement,
    parse_label_selector,
)

VALUE_REGEX_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
KEY_NAME_REGEX_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def parse_error(text: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        LabelSelector.parse(text)
    err = info.value
    assert (err.code, err.reason) == (400, "BadRequest")
    assert err.to_status()["code"] == 400
    return err


def field_error(text: str, resource: str, group: str = "", **kw: object) -> str:
    with pytest.raises(ApiError) as info:
        FieldSelector.parse(text, resource, group, **kw)  # type: ignore[arg-type]
    assert (info.value.code, info.value.reason) == (400, "BadRequest")
    return info.value.message


# ==================================================================================================
# Label selectors: grammar
# ==================================================================================================


class TestLabelGrammar:
    @pytest.mark.parametrize(
        ("text", "key", "op", "values"),
        [
            ("a=b", "a", EQUALS, ("b",)),
            ("a==b", "a", DOUBLE_EQUALS, ("b",)),
            ("a!=b", "a", NOT_EQUALS, ("b",)),
            ("a in (x,y)", "a", IN, ("x", "y")),
            ("a notin (x)", "a", NOT_IN, ("x",)),
            ("a", "a", EXISTS, ()),
            ("!a", "a", DOES_NOT_EXIST, ()),
            ("a>5", "a", GREATER_THAN, ("5",)),
            ("a<5", "a", LESS_THAN, ("5",)),
            ("app.kubernetes.io/name=kafka", "app.kubernetes.io/name", EQUALS, ("kafka",)),
            ("a=", "a", EQUALS, ("",)),
        ],
    )
    def test_single_requirement(self, text: str, key: str, op: str, values: tuple[str, ...]) -> None:
        sel = LabelSelector.parse(text)
        assert sel.requirements == (Requirement(key, op, values),)
        assert not sel.is_empty()

    @pytest.mark.parametrize("text", ["", " ", "\t\r\n "])
    def test_empty_selects_everything(self, text: str) -> None:
        sel = LabelSelector.parse(text)
        assert sel.is_empty()
        assert sel.matches({}) and sel.matches(None) and sel.matches({"any": "thing"})
        assert str(sel) == ""

    def test_whitespace_is_tolerated_everywhere(self) -> None:
        spaced = LabelSelector.parse("  a  =  b ,\tc\tin\t( x , y )\n,  !  d , e != f ")
        tight = LabelSelector.parse("a=b,c in (x,y),!d,e!=f")
        assert spaced == tight

    def test_requirements_are_sorted_by_key(self) -> None:
        sel = LabelSelector.parse("z=1,a=2,m")
        assert [r.key for r in sel.requirements] == ["a", "m", "z"]
        assert str(sel) == "a=2,m,z=1"

    def test_set_values_are_sorted_and_deduplicated(self) -> None:
        sel = LabelSelector.parse("a in (c,b,c,a)")
        assert sel.requirements[0].values == ("a", "b", "c")
        assert str(sel) == "a in (a,b,c)"

    @pytest.mark.parametrize(
        ("text", "values"),
        [
            ("x in ()", ("",)),
            ("x in (,)", ("",)),
            ("x in (a,)", ("", "a")),
            ("x in (,a)", ("", "a")),
            ("x in (a,,b)", ("", "a", "b")),
            ("x notin ()", ("",)),
        ],
    )
    def test_empty_values_inside_parentheses(self, text: str, values: tuple[str, ...]) -> None:
        assert LabelSelector.parse(text).requirements[0].values == values

    def test_upstream_doc_example(self) -> None:
        sel = LabelSelector.parse("x in (foo,,baz),y,z notin ()")
        assert str(sel) == "x in (,baz,foo),y,z notin ()"

    def test_in_and_notin_are_values_in_value_position(self) -> None:
        assert LabelSelector.parse("a in (in,notin)").requirements[0].values == ("in", "notin")
        assert LabelSelector.parse("a==in").requirements[0].values == ("in",)
        # A bare "in" is a key (Exists), just as upstream.
        assert LabelSelector.parse("in").requirements == (Requirement("in", EXISTS),)

    @pytest.mark.parametrize(
        "text",
        ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5"],
    )
    def test_upstream_good_strings_restring(self, text: str) -> None:
        assert str(LabelSelector.parse(text)) == text.replace(" ", "")

    @pytest.mark.parametrize("text", ["x=a||y=b", "x==a==b", "!x=a", "x<a"])
    def test_upstream_bad_strings(self, text: str) -> None:
        parse_error(text)

    def test_nul_handling_follows_the_go_lexer(self) -> None:
        # Go's Lexer.read returns 0 at end of input, so a NUL where a token starts ends the input,
        # while a NUL inside an identifier is swallowed as its terminator.
        assert LabelSelector.parse("a \0=b") == LabelSelector.parse("a")
        assert LabelSelector.parse("a\0=b") == LabelSelector.parse("a=b")

    def test_parse_label_selector_helper(self) -> None:
        assert parse_label_selector(None).is_empty()
        assert parse_label_selector("").is_empty()
        assert parse_label_selector("a=b") == LabelSelector.parse("a=b")


# ==================================================================================================
# Label selectors: error messages
# ==================================================================================================


class TestLabelErrors:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("a in", "unable to parse requirement: found '' expected: '('"),
            ("a in x", "unable to parse requirement: found 'x' expected: '('"),
            ("a in (", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
            ("a in (=", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
            ("a in (b,", "unable to parse requirement: found '', expected: ',', or identifier"),
            ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
            ("a!", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
            ("a(", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
            ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
            ("!!a", "unable to parse requirement: found '!', expected: identifier"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("x==a==b", "found '==', expected: ',' or 'end of string'"),
            ("a=b,", "found '', expected: identifier after ','"),
            ("a=b,,c", "found ',', expected: identifier after ','"),
            (",a", "found ',', expected: !, identifier, or 'end of string'"),
            ("=a", "found '=', expected: !, identifier, or 'end of string'"),
            ("(a)", "found '(', expected: !, identifier, or 'end of string'"),
        ],
    )
    def test_syntax_errors(self, text: str, message: str) -> None:
        assert parse_error(text).message == message

    def test_bad_key(self) -> None:
        assert parse_error("Foo_=b").message == (
            'unable to parse requirement: <nil>: Invalid value: "Foo_": ' + KEY_NAME_REGEX_MSG
        )

    def test_key_with_two_slashes(self) -> None:
        assert parse_error("a/b/c").message == (
            'unable to parse requirement: <nil>: Invalid value: "a/b/c": a valid label key must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        )

    def test_key_with_bad_prefix_and_empty_name(self) -> None:
        assert parse_error("Bad_Prefix/").message == (
            'unable to parse requirement: <nil>: Invalid value: "Bad_Prefix/": prefix part a lowercase RFC '
            "1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and "
            "end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'); name part must be non-empty; "
            + KEY_NAME_REGEX_MSG
        )

    def test_key_name_too_long(self) -> None:
        msg = parse_error("k" * 64).message
        assert msg.startswith(f'unable to parse requirement: <nil>: Invalid value: "{"k" * 64}": ')
        assert msg.endswith("name part must be no more than 63 bytes")

    def test_bad_value(self) -> None:
        assert parse_error("a=b_").message == (
            'unable to parse requirement: values[0][a]: Invalid value: "b_": ' + VALUE_REGEX_MSG
        )

    def test_value_too_long_reports_both_problems(self) -> None:
        value = "v" * 64
        assert parse_error(f"a={value}").message == (
            f'unable to parse requirement: values[0][a]: Invalid value: "{value}": must be no more than 63 bytes'
        )
        value = "-" + "v" * 63
        assert parse_error(f"a={value}").message == (
            f'unable to parse requirement: values[0][a]: Invalid value: "{value}": '
            "must be no more than 63 bytes; " + VALUE_REGEX_MSG
        )

    def test_several_bad_values_aggregate(self) -> None:
        assert parse_error("a in (c-,B_)").message == (
            "unable to parse requirement: ["
            f'values[0][a]: Invalid value: "B_": {VALUE_REGEX_MSG}, '
            f'values[1][a]: Invalid value: "c-": {VALUE_REGEX_MSG}]'
        )

    def test_ordering_operator_needs_an_integer(self) -> None:
        assert parse_error("a<x").message == (
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer"
        )

    def test_value_max_length_is_in_bytes(self) -> None:
        # 32 two-byte characters = 64 bytes: too long *and* not matching the regex, as in Go.
        value = "é" * 32
        message = parse_error(f"a={value}").message
        assert "must be no more than 63 bytes; a valid label" in message


# ==================================================================================================
# Label selectors: matching
# ==================================================================================================


class TestLabelMatching:
    @pytest.mark.parametrize(
        ("text", "labels", "expected"),
        [
            ("a=b", {"a": "b"}, True),
            ("a=b", {"a": "c"}, False),
            ("a=b", {}, False),
            ("a==b", {"a": "b", "x": "y"}, True),
            ("a!=b", {"a": "c"}, True),
            ("a!=b", {"a": "b"}, False),
            ("a!=b", {}, True),  # != matches objects lacking the key
            ("a in (x,y)", {"a": "y"}, True),
            ("a in (x,y)", {"a": "z"}, False),
            ("a in (x,y)", {}, False),
            ("a notin (x,y)", {"a": "z"}, True),
            ("a notin (x,y)", {"a": "x"}, False),
            ("a notin (x,y)", {}, True),  # notin matches objects lacking the key
            ("a", {"a": ""}, True),
            ("a", {"b": "a"}, False),
            ("!a", {"b": "1"}, True),
            ("!a", {"a": ""}, False),
            ("a=", {"a": ""}, True),
            ("a=", {}, False),
            ("a in ()", {"a": ""}, True),
            ("a in ()", {"a": "x"}, False),
            ("a>5", {"a": "6"}, True),
            ("a>5", {"a": "5"}, False),
            ("a>5", {"a": "x"}, False),
            ("a>5", {}, False),
            ("a<5", {"a": "-7"}, True),
            ("a<5", {"a": "07"}, False),
            ("a=b,c", {"a": "b"}, False),
            ("a=b,c", {"a": "b", "c": "x"}, True),
            ("app.kubernetes.io/name=kafka", {"app.kubernetes.io/name": "kafka"}, True),
        ],
    )
    def test_matches(self, text: str, labels: dict[str, str], expected: bool) -> None:
        assert LabelSelector.parse(text).matches(labels) is expected

    def test_none_labels_are_no_labels(self) -> None:
        assert LabelSelector.parse("a!=b").matches(None)
        assert not LabelSelector.parse("a").matches(None)


class TestLabelSelectorObject:
    def test_null_selects_nothing(self) -> None:
        sel = LabelSelector.from_label_selector_object(None)
        assert not sel.matches({}) and not sel.matches({"a": "b"})
        assert not sel.is_empty()

    @pytest.mark.parametrize("obj", [{}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": []}])
    def test_empty_selects_everything(self, obj: dict) -> None:
        sel = LabelSelector.from_label_selector_object(obj)
        assert sel.is_empty() and sel.matches({"x": "y"}) and sel.matches(None)

    def test_match_labels_and_expressions(self) -> None:
        sel = LabelSelector.from_label_selector_object(
            {
                "matchLabels": {"app": "kafka", "tier": "broker"},
                "matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a", "b"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "pool", "operator": "NotIn", "values": ["old"]},
                    {"key": "ready", "operator": "Exists"},
                ],
            }
        )
        assert str(sel) == "app=kafka,!canary,pool notin (old),ready,tier=broker,zone in (a,b)"
        good = {"app": "kafka", "tier": "broker", "zone": "a", "ready": "1"}
        assert sel.matches(good)
        assert not sel.matches({**good, "canary": "1"})
        assert not sel.matches({**good, "pool": "old"})
        assert not sel.matches({**good, "zone": "c"})
        assert not sel.matches({k: v for k, v in good.items() if k != "ready"})
        assert sel == LabelSelector.parse(str(sel))

    def test_unknown_operator(self) -> None:
        with pytest.raises(ApiError) as info:
            LabelSelector.from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "Gt"}]})
        assert info.value.code == 400
        assert info.value.message == '"Gt" is not a valid label selector operator'

    def test_in_without_values(self) -> None:
        with pytest.raises(ApiError) as info:
            LabelSelector.from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "In"}]})
        assert (
            info.value.message
            == "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        )

    def test_exists_with_values(self) -> None:
        with pytest.raises(ApiError) as info:
            LabelSelector.from_label_selector_object(
                {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]}
            )
        assert (
            info.value.message
            == 'values: Invalid value: ["x","y"]: values set must be empty for exists and does not exist'
        )

    def test_bad_match_label_key_and_value(self) -> None:
        with pytest.raises(ApiError) as info:
            LabelSelector.from_label_selector_object({"matchLabels": {"Foo_": "bar_"}})
        assert info.value.message == (
            f'[key: Invalid value: "Foo_": {KEY_NAME_REGEX_MSG}, values[0][Foo_]: Invalid value: "bar_": {VALUE_REGEX_MSG}]'
        )


# ==================================================================================================
# Label selectors: properties
# ==================================================================================================

_name_part = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True)
_dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?", fullmatch=True)
_prefix = st.lists(_dns_label, min_size=1, max_size=3).map(".".join)
label_keys = st.one_of(_name_part, st.tuples(_prefix, _name_part).map("/".join))
label_values = st.one_of(st.just(""), _name_part)
label_sets = st.dictionaries(label_keys, label_values, max_size=6)

requirements = st.one_of(
    st.builds(
        lambda k, v, op: Requirement(k, op, (v,)),
        label_keys,
        label_values,
        st.sampled_from([EQUALS, DOUBLE_EQUALS, NOT_EQUALS]),
    ),
    st.builds(
        lambda k, vs, op: Requirement(k, op, tuple(sorted(set(vs)))),
        label_keys,
        st.lists(label_values, min_size=1, max_size=4),
        st.sampled_from([IN, NOT_IN]),
    ),
    st.builds(lambda k, op: Requirement(k, op), label_keys, st.sampled_from([EXISTS, DOES_NOT_EXIST])),
    st.builds(
        lambda k, n, op: Requirement(k, op, (str(n),)),
        label_keys,
        st.integers(0, 10**6),
        st.sampled_from([GREATER_THAN, LESS_THAN]),
    ),
)


class TestLabelProperties:
    @given(label_sets, label_sets)
    @settings(max_examples=200)
    def test_match_labels_round_trip_through_string(
        self, match_labels: dict[str, str], candidate: dict[str, str]
    ) -> None:
        from_object = LabelSelector.from_label_selector_object({"matchLabels": match_labels})
        reparsed = LabelSelector.parse(str(from_object))
        assert reparsed == from_object
        assert reparsed.matches(candidate) == from_object.matches(candidate)
        assert from_object.matches({**candidate, **match_labels})

    @given(st.lists(requirements, max_size=5), label_sets)
    @settings(max_examples=200)
    def test_any_selector_round_trips(self, reqs: list[Requirement], labels: dict[str, str]) -> None:
        sel = LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))
        reparsed = LabelSelector.parse(str(sel))
        assert reparsed == sel
        assert reparsed.matches(labels) == all(r.matches(labels) for r in reqs)

    @given(label_keys, label_values, label_sets)
    def test_negations_are_complements(self, key: str, value: str, labels: dict[str, str]) -> None:
        def m(text: str) -> bool:
            return LabelSelector.parse(text).matches(labels)

        assert m(f"{key}={value}") != m(f"{key}!={value}")
        assert m(f"{key} in ({value})") != m(f"{key} notin ({value})")
        assert m(key) != m(f"!{key}")

    @given(st.text(alphabet=st.sampled_from(list("ab=!(),<> \tin_/.-1é")), max_size=20))
    @settings(max_examples=500)
    def test_parser_only_ever_raises_bad_request(self, text: str) -> None:
        try:
            sel = LabelSelector.parse(text)
        except ApiError as e:
            assert (e.code, e.reason) == (400, "BadRequest")
        else:
            assert LabelSelector.parse(str(sel)) == sel


# ==================================================================================================
# Field selectors
# ==================================================================================================


def pod(**kw: object) -> dict:
    obj: dict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {},
        "status": {},
    }
    for path, value in kw.items():
        head, _, tail = path.partition("__")
        obj.setdefault(head, {})[tail] = value
    return obj


class TestFieldGrammar:
    def test_operators_and_conjunction(self) -> None:
        sel = FieldSelector.parse("status.phase!=Failed,metadata.name==p,spec.nodeName=n1", "pods", "")
        assert [(r.field, r.operator, r.value) for r in sel.requirements] == [
            ("metadata.name", "=", "p"),
            ("spec.nodeName", "=", "n1"),
            ("status.phase", "!=", "Failed"),
        ]
        assert str(sel) == "metadata.name=p,spec.nodeName=n1,status.phase!=Failed"
        assert sel.requires_exact_match("spec.nodeName") == "n1"
        assert sel.requires_exact_match("status.phase") is None

    @pytest.mark.parametrize("text", ["", ",", ",,"])
    def test_empty_selects_everything(self, text: str) -> None:
        sel = FieldSelector.parse(text, "pods", "")
        assert sel.is_empty() and sel.matches(pod()) and str(sel) == ""

    def test_escaped_values(self) -> None:
        sel = FieldSelector.parse(r"metadata.name=a\,b\=c\\d", "configmaps", "")
        assert sel.requirements[0].value == "a,b=c\\d"
        assert str(sel) == r"metadata.name=a\,b\=c\\d"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("metadata.name=a,b", "invalid selector: 'metadata.name=a,b'; can't understand 'b'"),
            ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
            ("metadata.name=a\\x", "invalid field selector: invalid escape sequence: \\x"),
            ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
            # No whitespace trimming: the field is "metadata.name " (with the space).
            ("metadata.name = a", "field label not supported: metadata.name "),
        ],
    )
    def test_syntax_errors(self, text: str, message: str) -> None:
        assert field_error(text, "pods") == message

    def test_syntax_errors_win_over_unknown_fields(self) -> None:
        assert (
            field_error("spec.foo=x,zzz", "pods")
            == "invalid selector: 'spec.foo=x,zzz'; can't understand 'zzz'"
        )

    def test_terms_are_checked_in_sorted_order(self) -> None:
        assert field_error("spec.zzz=1,spec.aaa=1", "pods") == "field label not supported: spec.aaa"


class TestFieldSupport:
    @pytest.mark.parametrize(
        ("resource", "group", "fields"),
        [
            (
                "pods",
                "",
                [
                    "metadata.name",
                    "metadata.namespace",
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.podIPs",
                    "status.nominatedNodeName",
                    "spec.host",
                ],
            ),
            (
                "events",
                "",
                [
                    "metadata.name",
                    "metadata.namespace",
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ],
            ),
            (
                "events",
                "events.k8s.io",
                [
                    "metadata.name",
                    "metadata.namespace",
                    "regarding.kind",
                    "regarding.name",
                    "regarding.namespace",
                    "regarding.uid",
                    "regarding.apiVersion",
                    "regarding.resourceVersion",
                    "regarding.fieldPath",
                    "reason",
                    "reportingController",
                    "source",
                    "type",
                ],
            ),
            ("nodes", "", ["metadata.name", "spec.unschedulable"]),
            ("secrets", "", ["metadata.name", "metadata.namespace", "type"]),
            ("namespaces", "", ["metadata.name", "status.phase"]),
            ("services", "", ["metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"]),
            ("replicationcontrollers", "", ["metadata.name", "metadata.namespace", "status.replicas"]),
            ("jobs", "batch", ["metadata.name", "metadata.namespace", "status.successful"]),
            ("certificatesigningrequests", "certificates.k8s.io", ["metadata.name", "spec.signerName"]),
            ("configmaps", "", ["metadata.name", "metadata.namespace"]),
            ("persistentvolumeclaims", "", ["metadata.name", "metadata.namespace"]),
            ("statefulsets", "apps", ["metadata.name", "metadata.namespace"]),
            ("replicasets", "apps", ["metadata.name", "metadata.namespace"]),
            ("leases", "coordination.k8s.io", ["metadata.name", "metadata.namespace"]),
            ("storageclasses", "storage.k8s.io", ["metadata.name", "metadata.namespace"]),
        ],
    )
    def test_supported_fields(self, resource: str, group: str, fields: list[str]) -> None:
        for name in fields:
            FieldSelector.parse(f"{name}=x", resource, group)
            FieldSelector.parse(f"{name}!=x", resource, group)

    @pytest.mark.parametrize(
        ("resource", "group", "label", "message"),
        [
            ("pods", "", "spec.containers", "field label not supported: spec.containers"),
            ("events", "", "message", "field label not supported: message"),
            (
                "events",
                "events.k8s.io",
                "involvedObject.kind",
                "field label not supported: involvedObject.kind",
            ),
            ("nodes", "", "metadata.namespace", "field label not supported: metadata.namespace"),
            ("namespaces", "", "metadata.namespace", "field label not supported: metadata.namespace"),
            ("secrets", "", "data", "field label not supported: data"),
            ("services", "", "spec.ports", "field label not supported: spec.ports"),
            (
                "jobs",
                "batch",
                "status.succeeded",
                'field label "status.succeeded" not supported for batchv1.Job',
            ),
            (
                "configmaps",
                "",
                "data.x",
                '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
            ),
            (
                "replicasets",
                "apps",
                "status.replicas",
                '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"',
            ),
            (
                "statefulsets",
                "apps",
                "spec.replicas",
                '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"',
            ),
            ("kafkaclusters", "ballast.dev", "spec.replicas", "field label not supported: spec.replicas"),
        ],
    )
    def test_unsupported_fields(self, resource: str, group: str, label: str, message: str) -> None:
        err = field_error(f"{label}=x", resource, group)
        assert err == message

    def test_error_is_a_bad_request_status(self) -> None:
        with pytest.raises(ApiError) as info:
            FieldSelector.parse("spec.foo=bar", "pods", "")
        assert info.value.to_status() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "field label not supported: spec.foo",
            "reason": "BadRequest",
            "code": 400,
        }

    def test_custom_resources(self) -> None:
        FieldSelector.parse("metadata.namespace=a", "kafkaclusters", "ballast.dev")
        assert field_error("metadata.namespace=a", "clusterthings", "ballast.dev", namespaced=False) == (
            "field label not supported: metadata.namespace"
        )
        sel = FieldSelector.parse(
            "spec.color=red", "widgets", "example.com", selectable_fields=[".spec.color"]
        )
        assert sel.matches({"metadata": {"name": "w"}, "spec": {"color": "red"}})
        assert not sel.matches({"metadata": {"name": "w"}, "spec": {"color": "blue"}})

    def test_custom_flag_overrides_group_detection(self) -> None:
        assert field_error("spec.x=1", "gateways", "gateway.networking.k8s.io", custom=True) == (
            "field label not supported: spec.x"
        )
        assert field_error("spec.x=1", "things", "example.com", custom=False).startswith(
            '"spec.x" is not a known'
        )

    @pytest.mark.parametrize(
        ("value", "rendered"),
        [
            (True, "true"),
            (False, "false"),
            (3, "3"),
            (-2, "-2"),
            (1.5, "1.5"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (None, ""),
            ("s", "s"),
        ],
    )
    def test_custom_selectable_field_values_print_like_go(self, value: object, rendered: str) -> None:
        sel = FieldSelector.parse(
            f"spec.v={rendered}", "widgets", "example.com", selectable_fields=["spec.v"]
        )
        assert sel.matches({"spec": {"v": value}})


class TestFieldMatching:
    def test_missing_field_compares_as_empty(self) -> None:
        unscheduled = FieldSelector.parse("spec.nodeName=", "pods", "")
        assert unscheduled.matches(pod())
        assert not unscheduled.matches(pod(spec__nodeName="n1"))
        scheduled = FieldSelector.parse("spec.nodeName!=", "pods", "")
        assert scheduled.matches(pod(spec__nodeName="n1")) and not scheduled.matches(pod())

    def test_pod_fields(self) -> None:
        p = pod(
            spec__nodeName="n1",
            spec__restartPolicy="Always",
            spec__schedulerName="default-scheduler",
            spec__serviceAccountName="sa",
            status__phase="Running",
            status__podIPs=[{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
            status__podIP="10.0.0.1",
            status__nominatedNodeName="n2",
        )
        for text in [
            "metadata.name=p",
            "metadata.namespace=ns",
            "spec.nodeName=n1",
            "spec.host=n1",
            "spec.restartPolicy=Always",
            "spec.schedulerName=default-scheduler",
            "spec.serviceAccountName=sa",
            "spec.hostNetwork=false",
            "status.phase=Running",
            "status.podIP=10.0.0.1",
            "status.nominatedNodeName=n2",
            "status.phase!=Pending",
            "status.podIPs=",  # accepted, but never in the field set
        ]:
            assert FieldSelector.parse(text, "pods", "").matches(p), text
        assert FieldSelector.parse("spec.hostNetwork=true", "pods", "").matches(pod(spec__hostNetwork=True))
        assert FieldSelector.parse("status.podIP=1.2.3.4", "pods", "").matches(pod(status__podIP="1.2.3.4"))
        assert FieldSelector.parse("spec.serviceAccountName=old", "pods", "").matches(
            pod(spec__serviceAccount="old")
        )

    def test_conjunction(self) -> None:
        sel = FieldSelector.parse("status.phase=Running,spec.nodeName=n1", "pods", "")
        assert sel.matches(pod(status__phase="Running", spec__nodeName="n1"))
        assert not sel.matches(pod(status__phase="Running", spec__nodeName="n2"))
        assert not sel.matches(pod(status__phase="Pending", spec__nodeName="n1"))

    def test_core_events(self) -> None:
        event = {
            "metadata": {"name": "e1", "namespace": "ns"},
            "reason": "Killing",
            "type": "Normal",
            "involvedObject": {
                "kind": "Pod",
                "name": "p",
                "namespace": "ns",
                "uid": "u1",
                "apiVersion": "v1",
                "resourceVersion": "7",
                "fieldPath": "spec.containers{c}",
            },
            "source": {"component": "kubelet"},
            "reportingComponent": "kubelet",
        }
        for text in [
            "involvedObject.kind=Pod",
            "involvedObject.name=p",
            "involvedObject.namespace=ns",
            "involvedObject.uid=u1",
            "involvedObject.apiVersion=v1",
            "involvedObject.resourceVersion=7",
            "involvedObject.fieldPath=spec.containers{c}",
            "reason=Killing",
            "type=Normal",
            "source=kubelet",
            "reportingComponent=kubelet",
            "metadata.name=e1",
        ]:
            assert FieldSelector.parse(text, "events", "").matches(event), text
        assert not FieldSelector.parse("involvedObject.kind=Node", "events", "").matches(event)

    def test_event_source_falls_back_to_reporting_controller(self) -> None:
        sel = FieldSelector.parse("source=ballast", "events", "")
        assert sel.matches({"reportingComponent": "ballast"})
        assert sel.matches({"source": {}, "reportingController": "ballast"})

    def test_events_k8s_io_fields_map_onto_core_names(self) -> None:
        event = {
            "metadata": {"name": "e1", "namespace": "ns"},
            "regarding": {"kind": "StatefulSet", "name": "k"},
            "reportingController": "ballast.dev/operator",
            "reason": "Scaled",
            "type": "Normal",
        }
        sel = FieldSelector.parse(
            "regarding.kind=StatefulSet,regarding.name=k,reportingController=ballast.dev/operator",
            "events",
            "events.k8s.io",
        )
        assert [r.field for r in sel.requirements] == [
            "involvedObject.kind",
            "involvedObject.name",
            "reportingComponent",
        ]
        assert sel.matches(event)
        # The same stored event is visible through the core API under the core names.
        assert FieldSelector.parse("involvedObject.kind=StatefulSet", "events", "").matches(event)

    def test_nodes_secrets_namespaces_services(self) -> None:
        assert FieldSelector.parse("spec.unschedulable=false", "nodes", "").matches(
            {"metadata": {"name": "n"}}
        )
        assert FieldSelector.parse("spec.unschedulable=true", "nodes", "").matches(
            {"spec": {"unschedulable": True}}
        )
        assert FieldSelector.parse("type=kubernetes.io/tls", "secrets", "").matches(
            {"type": "kubernetes.io/tls"}
        )
        assert FieldSelector.parse("status.phase=Active", "namespaces", "").matches(
            {"status": {"phase": "Active"}}
        )
        svc = {
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"clusterIP": "None", "type": "ClusterIP"},
        }
        assert FieldSelector.parse("spec.clusterIP=None,spec.type=ClusterIP", "services", "").matches(svc)

    def test_counts_print_as_integers(self) -> None:
        assert FieldSelector.parse("status.successful=0", "jobs", "batch").matches({"status": {}})
        assert FieldSelector.parse("status.successful=2", "jobs", "batch").matches(
            {"status": {"succeeded": 2}}
        )
        assert FieldSelector.parse("status.replicas=3", "replicationcontrollers", "").matches(
            {"status": {"replicas": 3}}
        )

    def test_metadata_namespace_on_cluster_scoped_builtin(self) -> None:
        # Accepted by the default conversion; the object has no namespace, so it compares as "".
        sel = FieldSelector.parse("metadata.namespace=", "storageclasses", "storage.k8s.io")
        assert sel.matches({"metadata": {"name": "standard"}})
        assert not FieldSelector.parse("metadata.namespace=x", "storageclasses", "storage.k8s.io").matches(
            {"metadata": {"name": "standard"}}
        )


field_values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)


class TestFieldProperties:
    @given(field_values)
    def test_escaped_value_round_trips(self, value: str) -> None:
        escaped = value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        sel = FieldSelector.parse(f"metadata.name={escaped}", "configmaps", "")
        assert sel.requirements[0].value == value
        assert sel.matches({"metadata": {"name": value}})
        assert FieldSelector.parse(str(sel), "configmaps", "") == sel

    @given(field_values, field_values)
    def test_not_equals_is_the_complement(self, wanted: str, actual: str) -> None:
        escaped = wanted.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        obj = {"metadata": {"name": actual}}
        eq = FieldSelector.parse(f"metadata.name={escaped}", "pods", "").matches(obj)
        ne = FieldSelector.parse(f"metadata.name!={escaped}", "pods", "").matches(obj)
        assert eq != ne
        assert eq == (wanted == actual)
