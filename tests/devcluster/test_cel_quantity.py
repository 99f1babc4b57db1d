"""The Kubernetes CEL quantity library (k8s.io/apiserver/pkg/cel/library/quantity.go) over an exact
resource.Quantity, and the operator CRD's "storage may grow but never shrink" rule through the API server."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster import cel
from devcluster.quantity import ERR_FORMAT, ERR_NUMERIC, ERR_SUFFIX, parse_quantity

STRING = cel.Decl("string")


def evaluate(rule: str, self_value: Any = "", old: Any = None, expect: str = "bool") -> Any:
    program = cel.compile_expression(rule, STRING, expect=expect)
    assert not program.unsupported, rule
    return program.evaluate({"self": self_value, "oldSelf": old})


def compile_error(rule: str) -> str:
    with pytest.raises(cel.CelCompileError) as err:
        cel.compile_expression(rule, STRING)
    return str(err.value).splitlines()[0]


def runtime_error(rule: str) -> str:
    with pytest.raises(cel.CelEvalError) as err:
        evaluate(rule)
    return str(err.value)


# --- resource.ParseQuantity -----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("0Ki", 0), ("1", 1), ("1Ki", 1024), ("7Mi", 7 * 2**20), ("6Gi", 6 * 2**30), ("5Ti", 5 * 2**40),
    ("4Pi", 4 * 2**50), ("3Ei", 3 * 2**60), ("5n", "5e-9"), ("4u", "4e-6"), ("3m", "0.003"), ("8k", 8000),
    ("50k", 50000), ("7M", 7 * 10**6), ("6G", 6 * 10**9), ("5T", 5 * 10**12), ("2P", 2 * 10**15), ("1E", 10**18),
    ("12E", 12 * 10**18), ("1E-3", "0.001"), ("1e3", 1000), ("1.3E+6", 1300000), ("0.5e-2", "0.005"),
    ("100.035k", 100035), ("0.0005k", "0.5"), ("10.035M", 10035000), ("1.01E", 101 * 10**16),
    ("100.035Ki", "102435.84"), ("0.5Mi", 2**19), (".001", "0.001"), ("1.", 1), ("1.G", 10**9),
    ("-1.5Gi", -3 * 2**29), ("+2k", 2000),
    # non-zero values below a nano round up (away from zero) to whole nanos
    ("3.001n", "4e-9"), ("1.1E-9", "2e-9"), ("0.0000000001", "1e-9"), ("0.00000012345", "124e-9"),
    ("-0.5n", "-1e-9"), ("0.000000000001Ki", "2e-9"),
    # binary suffixes cap at 2^63-1
    ("9Ei", 2**63 - 1), ("9223372036854775807Ki", 2**63 - 1),
    # what the scanner accepts: a bare sign or point is zero, and so is a bare suffix
    (".", 0), ("-", 0), ("Mi", 0),
])
def test_parse_values(text: str, value: int | str) -> None:
    q = parse_quantity(text)
    assert Fraction(q.unscaled) * Fraction(10) ** q.exp == Fraction(value)


@pytest.mark.parametrize(("text", "message"), [
    ("", ERR_FORMAT), ("1.1.M", ERR_FORMAT), ("1+1.0M", ERR_FORMAT), ("aoeu", ERR_FORMAT), (" 1", ERR_FORMAT),
    ("1 ", ERR_FORMAT), ("10Mo", ERR_FORMAT), ("1,3G", ERR_FORMAT), ("Three", ERR_FORMAT),
    ("0.1mi", ERR_SUFFIX), ("0.1am", ERR_FORMAT), (".5i", ERR_SUFFIX), ("1i", ERR_SUFFIX), ("-3.01e-", ERR_SUFFIX),
    ("200K", ERR_SUFFIX), ("10Mm", ERR_SUFFIX), ("1e4294967297", ERR_SUFFIX), ("1e-2147483648", ERR_SUFFIX),
    (".e-10", ERR_NUMERIC),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_quantity(text)
    assert str(err.value) == message


# --- the CEL library (cases from k8s.io/apiserver/pkg/cel/library/quantity_test.go and more) ---------

@pytest.mark.parametrize(("rule", "expected"), [
    ("isQuantity('20') && isQuantity('20M') && isQuantity('20Mi') && isQuantity('1.3G') && isQuantity('10000k')",
     True),
    ("isQuantity('20Mo') || isQuantity('10Mm') || isQuantity('200K') || isQuantity('1,3G') || isQuantity('Three')",
     False),
    ("quantity('200M') == quantity('200M')", True),
    ("quantity('200M') == quantity('0.2G') && quantity('0.2G') == quantity('200M')", True),
    ("quantity('2M') == quantity('0.002G') && quantity('2000k') == quantity('2M')", True),
    ("quantity('1Gi') == quantity('1024Mi') && quantity('1Gi') != quantity('1G')", True),
    ("quantity('200M') == quantity('0.3G')", False),
    ("quantity('50M').isLessThan(quantity('50Mi'))", True),
    ("quantity('100M').isLessThan(quantity('50M'))", False),
    ("quantity('50Mi').isGreaterThan(quantity('50M'))", True),
    ("quantity('50M').isGreaterThan(quantity('100M'))", False),
    ("quantity('200M').compareTo(quantity('0.2G'))", 0),
    ("quantity('50M').compareTo(quantity('50Mi'))", -1),
    ("quantity('50Mi').compareTo(quantity('50M'))", 1),
    ("quantity('-1').compareTo(quantity('1n'))", -1),
    ("quantity('1e100').compareTo(quantity('99999999999999999999Ei'))", 1),
    ("quantity('50k').add(quantity('20')) == quantity('50.02k')", True),
    ("quantity('50k').add(20).isLessThan(quantity('50020'))", False),
    ("quantity('50k').sub(quantity('20')) == quantity('49.98k')", True),
    ("quantity('50k').sub(20) == quantity('49980')", True),
    ("quantity('50k').add(20).sub(quantity('100k')).asInteger()", -49980),
    ("quantity('50k').add(20).sub(quantity('100k')).sub(-50000).asInteger()", 20),
    ("quantity('9Ei').add(quantity('9Ei')) == quantity('18446744073709551614')", True),
    ("quantity('50k').asInteger()", 50000),
    ("quantity('50').isInteger() && quantity('0.5k').isInteger() && quantity('1Gi').isInteger()", True),
    # AsInt64 only succeeds on the int64 state at a non-negative scale: these are not "integers"
    ("quantity('9999999999999999999999999999999999999G').isInteger()", False),
    ("quantity('1000m').isInteger() || quantity('1.5Gi').isInteger() || quantity('1Ei').isInteger()", False),
    ("quantity('1Ti').add(quantity('1Ti')).asInteger()", 2 * 2**40),
    ("quantity('50.703k').asApproximateFloat()", 50703.0),
    ("quantity('1.5Gi').asApproximateFloat()", 1610612736.0),
    ("quantity('100.035Ki').asApproximateFloat()", 102435.84000000001),  # float64(102435840000000) * 1e-9
    ("quantity('1e400').asApproximateFloat()", math.inf),
    ("sign(quantity('-1.5Gi')) == -1 && sign(quantity('0')) == 0 && sign(quantity('1n')) == 1", True),
    ("type(quantity('1')) == type(quantity('2Gi'))", True),
    ("[quantity('1k')].exists(q, q == quantity('1000'))", True),
    ("dyn(quantity('1k')).add(1).asInteger()", 1001),
])
def test_library(rule: str, expected: Any) -> None:
    expect = {bool: "bool", int: "int", float: "double"}[type(expected)]
    result = evaluate(rule, expect=expect)
    assert result == expected and type(result) is type(expected), (rule, result)


def test_equality_with_an_add_or_sub_result_on_the_right_is_false() -> None:
    # add/sub return *Quantity and Quantity.Equal only accepts a Quantity value; cel-go's == calls the
    # left operand's Equal, so the comparison is only by value with the computed quantity on the left.
    assert evaluate("quantity('1').add(1) == quantity('2')") is True
    assert evaluate("quantity('2') == quantity('1').add(1)") is False
    assert evaluate("quantity('2') != quantity('1').add(1)") is True


@pytest.mark.parametrize(("rule", "message"), [
    ("quantity('10Mo') == quantity('1')", ERR_FORMAT),
    ("quantity('10Mm') == quantity('1')", ERR_SUFFIX),
    ("quantity('9999999999999999999999999999999999999G').asInteger() == 1", "cannot convert value to integer"),
    ("quantity('1.5').asInteger() == 1", "cannot convert value to integer"),
    ("dyn('1').add(1) == quantity('2')", "no such overload"),
])
def test_runtime_errors(rule: str, message: str) -> None:
    assert runtime_error(rule) == message


@pytest.mark.parametrize(("rule", "message"), [
    ("isQuantity([1, 2, 3])", "found no matching overload for 'isQuantity' applied to '(list)'"),
    ("quantity(1) == quantity('1')", "found no matching overload for 'quantity' applied to '(int)'"),
    ("quantity('1').add('2') == quantity('3')",
     "found no matching overload for 'add' applied to 'kubernetes.Quantity.(string)'"),
    ("quantity('1').sign() == 1", "found no matching overload for 'sign' applied to 'kubernetes.Quantity.()'"),
    ("self.isInteger()", "found no matching overload for 'isInteger' applied to 'string.()'"),
    ("isInteger(quantity('1'))", "found no matching overload for 'isInteger' applied to '(kubernetes.Quantity)'"),
    ("quantity('1') < quantity('2')",
     "found no matching overload for '_<_' applied to '(kubernetes.Quantity, kubernetes.Quantity)'"),
    ("quantity('1') == '1'", "found no matching overload for '_==_' applied to '(kubernetes.Quantity, string)'"),
    ("quantity(self)", "must evaluate to a bool"),
])
def test_compile_errors(rule: str, message: str) -> None:
    assert message in compile_error(rule)


def test_semver_methods_sharing_quantity_names_stay_skipped() -> None:
    program = cel.compile_expression("semver(self).isLessThan(semver('2.0.0'))", STRING)
    assert program.unsupported
    assert program.evaluate({"self": "1.0.0", "oldSelf": None}) is None


# --- end to end: the operator CRD's transition rule ----------------------------------------------------

CRD_PATH = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "kafkaclusters.kafka.ballast.dev.yaml"
GROUP, VERSION, PLURAL = "kafka.ballast.dev", "v1alpha1", "kafkaclusters"



def _set_size(api: client.CustomObjectsApi, size: str) -> dict[str, Any]:
    patch = {"spec": {"brokers": {"storage": {"size": size}}}}
    return api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "kc", patch)


def test_broker_storage_may_grow_but_never_shrink(kafkaclusters: client.CustomObjectsApi) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaCluster", "metadata": {"name": "kc"},
            "spec": {"brokers": {"storage": {"size": "10Gi"}}}}
    kafkaclusters.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)

    grown = _set_size(kafkaclusters, "20Gi")
    assert grown["spec"]["brokers"]["storage"]["size"] == "20Gi"
    assert _set_size(kafkaclusters, "20480Mi")["spec"]["brokers"]["storage"]["size"] == "20480Mi"  # same value

    with pytest.raises(ApiException) as err:
        _set_size(kafkaclusters, "10Gi")
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    assert status["message"] == ('KafkaCluster.kafka.ballast.dev "kc" is invalid: spec.brokers.storage.size: '
                                 "Forbidden: storage size may grow but never shrink")
    assert status["details"]["causes"] == [{"reason": "FieldValueForbidden", "field": "spec.brokers.storage.size",
                                            "message": "Forbidden: storage size may grow but never shrink"}]
    stored = kafkaclusters.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "kc")
    assert stored["spec"]["brokers"]["storage"]["size"] == "20480Mi"
