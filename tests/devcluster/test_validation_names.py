"""Object name, label and annotation validation: kube-apiserver's (1.35+) exact cause messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devcluster.errors import Cause, invalid
from devcluster.validation import (
    NAME_RULES,
    go_quote,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_key,
    is_label_value,
    regex_error,
    validate_annotations,
    validate_labels,
    validate_object_name,
)

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
KEY_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def invalid_name(value: str, detail: str, field: str = "metadata.name") -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {go_quote(value)}: {detail}", field)


class TestObjectNames:
    def test_subdomain_message_is_the_documented_one(self) -> None:
        [cause] = validate_object_name("ConfigMap", "", "Foo_bar", None, "dns1123-subdomain")
        assert cause == invalid_name("Foo_bar", SUBDOMAIN_MSG)
        assert f"{cause.field}: {cause.message}" == (
            'metadata.name: Invalid value: "Foo_bar": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )

    @pytest.mark.parametrize("rule", sorted(NAME_RULES))
    @pytest.mark.parametrize("name", [None, ""])
    def test_name_required(self, rule: str, name: str | None) -> None:
        assert validate_object_name("Pod", "", name, None, rule) == [
            Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name")
        ]

    @pytest.mark.parametrize(
        ("rule", "name"),
        [
            ("dns1123-subdomain", "kafka-0"),
            ("dns1123-subdomain", "a.b.c"),
            ("dns1123-subdomain", "0"),
            ("dns1123-subdomain", "a" * 253),
            ("dns1123-label", "kafka"),
            ("dns1123-label", "a" * 63),
            ("dns1035-label", "kafka-headless"),
            ("path-segment", "system:controller:foo"),
            ("path-segment", "Anything Goes_Here"),
        ],
    )
    def test_valid_names(self, rule: str, name: str) -> None:
        assert validate_object_name("K", "g", name, None, rule) == []

    @pytest.mark.parametrize(
        ("rule", "name", "details"),
        [
            ("dns1123-subdomain", "UPPER", [SUBDOMAIN_MSG]),
            ("dns1123-subdomain", "-a", [SUBDOMAIN_MSG]),
            ("dns1123-subdomain", "a..b", [SUBDOMAIN_MSG]),
            ("dns1123-subdomain", "a" * 254, ["must be no more than 253 characters"]),
            ("dns1123-subdomain", "A" * 254, ["must be no more than 253 characters", SUBDOMAIN_MSG]),
            ("dns1123-label", "a.b", ["must not contain dots"]),
            ("dns1123-label", "a_b", [LABEL_MSG]),
            ("dns1123-label", "a" * 64, ["must be no more than 63 characters"]),
            (
                "dns1123-label",
                "a." * 32 + "a",
                ["must be no more than 63 characters", "must not contain dots"],
            ),
            ("dns1035-label", "1abc", [DNS1035_MSG]),
            ("dns1035-label", "a.b", [DNS1035_MSG]),
            ("dns1035-label", "a" * 64, ["must be no more than 63 characters"]),
            ("path-segment", ".", ["may not be '.'"]),
            ("path-segment", "..", ["may not be '..'"]),
            ("path-segment", "a/b", ["may not contain '/'"]),
            ("path-segment", "a/%", ["may not contain '/'", "may not contain '%'"]),
        ],
    )
    def test_invalid_names(self, rule: str, name: str, details: list[str]) -> None:
        assert validate_object_name("K", "", name, None, rule) == [invalid_name(name, d) for d in details]

    def test_generate_name_is_validated_as_a_prefix(self) -> None:
        # A trailing dash is fine in a prefix ...
        assert validate_object_name("Pod", "", "kafka-x7k2p", "kafka-", "dns1123-subdomain") == []
        assert validate_object_name("Namespace", "", "test-abcde", "test-", "dns1123-label") == []
        assert validate_object_name("Role", "rbac.authorization.k8s.io", "x..", "..", "path-segment") == []
        # ... but everything else about it must be valid; the cause is on metadata.generateName.
        assert validate_object_name("Pod", "", "ok-abcde", "Bad-", "dns1123-subdomain") == [
            invalid_name("Bad-", SUBDOMAIN_MSG, "metadata.generateName")
        ]
        assert validate_object_name("Role", "", "ok", "a/", "path-segment") == [
            invalid_name("a/", "may not contain '/'", "metadata.generateName")
        ]

    def test_generate_name_without_generated_name(self) -> None:
        assert validate_object_name("Pod", "", None, "Bad-", "dns1123-subdomain") == [
            invalid_name("Bad-", SUBDOMAIN_MSG, "metadata.generateName"),
            Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name"),
        ]

    def test_trailing_dash_mask_is_upstreams(self) -> None:
        # maskTrailingDash drops the last two characters and appends "a": "a-" -> "a", "-" stays "-".
        assert validate_object_name("Pod", "", "x", "a-", "dns1123-subdomain") == []
        assert validate_object_name("Pod", "", "x", "-", "dns1123-subdomain") == [
            invalid_name("-", SUBDOMAIN_MSG, "metadata.generateName")
        ]

    def test_unknown_rule(self) -> None:
        with pytest.raises(ValueError, match="unknown name rule"):
            validate_object_name("Pod", "", "p", None, "nope")

    def test_status_rendering_through_errors_invalid(self) -> None:
        causes = validate_object_name("ConfigMap", "", "Foo_bar", None, "dns1123-subdomain")
        err = invalid("ConfigMap", "", "Foo_bar", causes)
        assert err.code == 422
        assert (
            err.message
            == f'ConfigMap "Foo_bar" is invalid: metadata.name: Invalid value: "Foo_bar": {SUBDOMAIN_MSG}'
        )
        assert err.to_status()["details"]["causes"] == [
            {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "Foo_bar": {SUBDOMAIN_MSG}',
                "field": "metadata.name",
            }
        ]


class TestLabels:
    def test_valid(self) -> None:
        assert validate_labels(None) == []
        assert validate_labels({}) == []
        assert validate_labels({"app.kubernetes.io/name": "kafka", "a": "", "A_b.c-1": "X_y.z-2"}) == []

    def test_bad_key_and_value_are_reported_on_the_labels_field(self) -> None:
        assert validate_labels({"bad key": "bad value"}) == [
            invalid_name("bad key", KEY_NAME_MSG, "metadata.labels"),
            invalid_name("bad value", VALUE_MSG, "metadata.labels"),
        ]

    def test_custom_field_path(self) -> None:
        [cause] = validate_labels({"a": "-"}, "spec.template.metadata.labels")
        assert cause.field == "spec.template.metadata.labels"

    def test_long_value(self) -> None:
        assert validate_labels({"a": "v" * 64}) == [
            invalid_name("v" * 64, "must be no more than 63 bytes", "metadata.labels")
        ]

    def test_key_errors(self) -> None:
        assert is_label_key("example.com/" + "n" * 64) == ["name part must be no more than 63 bytes"]
        assert is_label_key("/name") == ["prefix part must be non-empty"]
        assert is_label_key("Example.com/name") == ["prefix part " + SUBDOMAIN_MSG]
        assert is_label_key("p" * 254 + "/n") == ["prefix part must be no more than 253 bytes"]
        assert is_label_key("a/") == ["name part must be non-empty", KEY_NAME_MSG]
        assert is_label_key("a/b/c") == [
            "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')"
        ]

    def test_values_are_measured_in_bytes(self) -> None:
        assert is_label_value("é" * 32) == ["must be no more than 63 bytes", VALUE_MSG]
        assert is_label_value("a\n") == [VALUE_MSG]  # Go's $ does not accept a trailing newline


class TestAnnotations:
    def test_keys_are_case_insensitive_label_keys(self) -> None:
        assert validate_annotations({"Example.COM/Some-Key": "anything at all \n"}) == []
        assert validate_annotations({"a/b/c": "x"}) == [
            invalid_name("a/b/c", is_label_key("a/b/c")[0], "metadata.annotations")
        ]
        # The bad value shown is the original key, the check runs on its lower-cased form.
        assert validate_annotations({"Bad_/x": ""}) == [
            invalid_name("Bad_/x", "prefix part " + SUBDOMAIN_MSG, "metadata.annotations")
        ]

    def test_total_size_limit(self) -> None:
        limit = 256 * 1024
        assert validate_annotations({"k": "v" * (limit - 1)}) == []
        assert validate_annotations({"k": "v" * limit}) == [
            Cause("FieldValueTooLong", "Too long: may not be more than 262144 bytes", "metadata.annotations")
        ]
        # Bytes, not characters.
        assert validate_annotations({"k": "é" * (limit // 2)}) != []


class TestPrimitives:
    def test_regex_error_double_space(self) -> None:
        assert regex_error("m", "r") == "m (regex used for validation is 'r')"
        assert regex_error("m", "r", "a", "b") == "m (e.g. 'a',  or 'b', regex used for validation is 'r')"

    def test_go_quote(self) -> None:
        assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
        assert go_quote("tab\tnl\n") == '"tab\\tnl\\n"'
        assert go_quote("\x01\x7f") == '"\\x01\\x7f"'
        assert go_quote("é€") == '"é€"'

    @given(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True))
    def test_every_dns_label_is_a_subdomain(self, name: str) -> None:
        assert is_dns1123_label(name) == []
        assert is_dns1123_subdomain(name) == []
        assert (is_dns1035_label(name) == []) == name[0].isalpha()

    @given(st.text(max_size=80))
    def test_rules_agree_with_their_definitions(self, name: str) -> None:
        import re

        label_ok = re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) is not None and len(name) <= 63
        assert (is_dns1123_label(name) == []) == label_ok
        value_ok = (
            re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", name) is not None
            and len(name.encode()) <= 63
        )
        assert (is_label_value(name) == []) == value_ok
