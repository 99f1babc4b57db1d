"""Unit tests for devcluster.patch: PATCH semantics and errors as kube-apiserver 1.3x applies them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devcluster.errors import ApiError
from devcluster.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_STRATEGIES,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
    json_merge_patch,
    strategic_merge_patch,
)

REJECTED = "the server rejected our request due to an error in our request"


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"},
                     "finalizers": ["a.example/f", "b.example/f"],
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                          "uid": "u1", "controller": True}]},
        "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "args": ["--a", "--b"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "sidecar", "image": "side:1"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}],
            "tolerations": [{"key": "k1", "operator": "Exists"}],
            "imagePullSecrets": [{"name": "reg"}],
        },
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]},
    }


def smp(original: dict, patch: dict, kind: str = "Pod") -> dict:
    return strategic_merge_patch(original, patch, kind)


def failure(fn: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args)
    return info.value


def names(items: list[dict], key: str = "name") -> list[Any]:
    return [item[key] for item in items]


# -- strategic merge patch: merge keys per kind --------------------------------------------------------


def test_containers_merge_by_name_and_nested_env_ports_mounts() -> None:
    out = smp(pod(), {"spec": {"containers": [{
        "name": "app", "image": "app:2",
        "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
        "ports": [{"containerPort": 443, "name": "https"}],
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}]}})
    app, sidecar = out["spec"]["containers"]
    assert (app["image"], sidecar) == ("app:2", {"name": "sidecar", "image": "side:1"})
    assert app["args"] == ["--a", "--b"]
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"},
                            {"containerPort": 443, "protocol": "TCP", "name": "https"}]
    assert names(app["volumeMounts"], "mountPath") == ["/cache", "/data"]  # see the ordering test below


def test_new_merge_list_item_goes_before_server_only_items_like_upstream() -> None:
    # apimachinery's mergeSortedSlice: a new element comes before server-only elements it is compared with.
    out = smp(pod(), {"spec": {"containers": [{"name": "init", "image": "x"}]}})
    assert names(out["spec"]["containers"]) == ["init", "app", "sidecar"]
    # ...but after server items that precede an existing patched item (the design doc's example).
    live = {"spec": {"containers": [{"name": "B"}, {"name": "C"}, {"name": "A"}]}}
    out = smp(live, {"spec": {"containers": [{"name": "A", "x": 1}, {"name": "B", "x": 1}, {"name": "D"}]}})
    assert names(out["spec"]["containers"]) == ["C", "A", "B", "D"]


def test_volumes_image_pull_secrets_and_host_aliases_merge() -> None:
    out = smp(pod(), {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "cfg2"}}, {"name": "tmp"}],
                               "imagePullSecrets": [{"name": "reg2"}],
                               "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]}})
    assert out["spec"]["volumes"][:2] == [{"name": "data", "emptyDir": {}},
                                          {"name": "cfg", "configMap": {"name": "cfg2"}}]
    assert sorted(names(out["spec"]["volumes"])) == ["cfg", "data", "tmp"]
    assert sorted(names(out["spec"]["imagePullSecrets"])) == ["reg", "reg2"]
    assert out["spec"]["hostAliases"] == [{"ip": "10.0.0.1", "hostnames": ["a"]}]


def test_conditions_merge_by_type() -> None:
    out = smp(pod(), {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                           {"type": "Initialized", "status": "True"}]
    for kind in ("Node", "PersistentVolumeClaim", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                 "Namespace", "PodDisruptionBudget", "Service", "ReplicationController"):
        live = {"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]}}
        out = smp(live, {"status": {"conditions": [{"type": "B", "status": "False"}]}}, kind)
        assert out["status"]["conditions"] == [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]


def test_crd_conditions_and_container_statuses_have_no_merge_strategy() -> None:
    live = {"status": {"conditions": [{"type": "Established"}, {"type": "NamesAccepted"}],
                       "containerStatuses": [{"name": "app", "ready": True}, {"name": "sidecar"}]}}
    out = smp(live, {"status": {"conditions": [{"type": "Established", "status": "True"}]}},
              "CustomResourceDefinition")
    assert out["status"]["conditions"] == [{"type": "Established", "status": "True"}]
    out = smp(live, {"status": {"containerStatuses": [{"name": "app", "ready": False}]}})
    assert out["status"]["containerStatuses"] == [{"name": "app", "ready": False}]


def test_owner_references_merge_by_uid() -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u2"}
    out = smp(pod(), {"metadata": {"ownerReferences": [ref, {"uid": "u1", "blockOwnerDeletion": True}]}})
    refs = out["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == ["u2", "u1"]
    assert refs[1]["name"] == "rs" and refs[1]["blockOwnerDeletion"] is True


def test_finalizers_are_a_set_union() -> None:
    out = smp(pod(), {"metadata": {"finalizers": ["b.example/f", "c.example/f", "c.example/f"]}}, "ConfigMap")
    assert out["metadata"]["finalizers"] == ["a.example/f", "b.example/f", "c.example/f"]
    out = smp({"metadata": {}}, {"metadata": {"finalizers": ["x"]}}, "Secret")
    assert out["metadata"]["finalizers"] == ["x"]


def test_service_ports_node_addresses_and_pod_cidrs() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = smp(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    node = {"spec": {"podCIDRs": ["10.0.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "1.1.1.1"}, {"type": "Hostname"}]}}
    out = smp(node, {"spec": {"podCIDRs": ["10.1.0.0/24"]},
                     "status": {"addresses": [{"type": "InternalIP", "address": "2.2.2.2"}]}}, "Node")
    assert out["status"]["addresses"] == [{"type": "InternalIP", "address": "2.2.2.2"}, {"type": "Hostname"}]
    assert sorted(out["spec"]["podCIDRs"]) == ["10.0.0.0/24", "10.1.0.0/24"]


def test_pod_template_in_workloads() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": pod()["spec"]}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:9"}]}}}}
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"):
        out = smp({"spec": {"template": copy.deepcopy(template)}}, patch, kind)
        assert names(out["spec"]["template"]["spec"]["containers"]) == ["app", "sidecar"]
        assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "app:9"
    cron = {"spec": {"jobTemplate": {"spec": {"template": copy.deepcopy(template)}}}}
    out = smp(cron, {"spec": {"jobTemplate": patch}}, "CronJob")
    assert names(out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]) == ["app", "sidecar"]
    # In a kind without a pod template, the same path is an ordinary (replaced) list.
    out = smp({"spec": {"template": copy.deepcopy(template)}}, patch, "ConfigMap")
    assert names(out["spec"]["template"]["spec"]["containers"]) == ["app"]


def test_lists_without_merge_strategy_are_replaced() -> None:
    out = smp(pod(), {"spec": {"tolerations": [{"key": "k2", "operator": "Exists"}],
                               "containers": [{"name": "app", "args": ["--c"]}]}})
    assert out["spec"]["tolerations"] == [{"key": "k2", "operator": "Exists"}]
    assert out["spec"]["containers"][0]["args"] == ["--c"]
    sts = {"spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}}
    out = smp(sts, {"spec": {"volumeClaimTemplates": [{"metadata": {"name": "c"}}]}}, "StatefulSet")
    assert out["spec"]["volumeClaimTemplates"] == [{"metadata": {"name": "c"}}]


def test_null_deletes_keys_at_any_depth_and_is_dropped_from_added_values() -> None:
    out = smp(pod(), {"metadata": {"labels": {"tier": None, "new": "x"}},
                      "spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": None}]}],
                               "nodeSelector": {"a": "b", "gone": None}},
                      "status": None})
    assert out["metadata"]["labels"] == {"app": "web", "new": "x"}
    assert out["spec"]["containers"][0]["env"][0] == {"name": "A"}
    assert out["spec"]["nodeSelector"] == {"a": "b"}
    assert "status" not in out


def test_pdb_selector_uses_replace_strategy_and_deployment_strategy_retain_keys() -> None:
    pdb = {"spec": {"selector": {"matchLabels": {"a": "1"}, "matchExpressions": []}}}
    out = smp(pdb, {"spec": {"selector": {"matchLabels": {"b": "2"}}}}, "PodDisruptionBudget")
    assert out["spec"]["selector"] == {"matchLabels": {"b": "2"}}
    assert PATCH_STRATEGIES["Deployment"]["spec.strategy"] == ("retainKeys", "")
    assert PATCH_STRATEGIES["Pod"]["spec.volumes"] == ("merge,retainKeys", "name")
    assert "spec.tolerations" not in PATCH_STRATEGIES["Pod"]


def test_original_and_patch_are_not_modified() -> None:
    original, patch = pod(), {"spec": {"containers": [{"name": "app", "$patch": "delete"}]},
                              "metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/f"]}}
    before = (copy.deepcopy(original), copy.deepcopy(patch))
    smp(original, patch)
    assert (original, patch) == before


# -- strategic merge patch: directives ----------------------------------------------------------------


def test_patch_replace_on_a_map() -> None:
    out = smp(pod(), {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert out["metadata"]["labels"] == {"only": "this"}


def test_patch_delete_on_a_map() -> None:
    out = smp(pod(), {"metadata": {"labels": {"$patch": "delete"}}})
    assert out["metadata"]["labels"] == {}
    # A directive map for a field the object lacks adds nothing.
    out = smp(pod(), {"spec": {"securityContext": {"$patch": "delete"}}})
    assert "securityContext" not in out["spec"]


def test_patch_delete_on_list_elements() -> None:
    out = smp(pod(), {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}],
                               "volumes": [{"name": "cfg", "$patch": "delete"}, {"name": "new"}]}})
    assert names(out["spec"]["containers"]) == ["app"]
    assert names(out["spec"]["volumes"]) == ["new", "data"]


def test_patch_replace_on_a_merge_list() -> None:
    out = smp(pod(), {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}})
    assert out["spec"]["containers"] == [{"name": "only", "image": "o"}]
    out = smp(pod(), {"status": {"conditions": [{"$patch": "replace"}]}})
    assert out["status"]["conditions"] == []


def test_patch_merge_and_unknown_directives_are_rejected_like_upstream() -> None:
    err = failure(smp, pod(), {"metadata": {"labels": {"$patch": "merge"}}})
    assert (err.code, err.reason) == (500, "")
    assert err.message == "unknown patch type: merge in map: map[$patch:merge]"
    err = failure(smp, pod(), {"spec": {"containers": [{"name": "app", "$patch": "merge"}]}})
    assert (err.code, err.message) == (500, "merging lists cannot yet be specified in the patch")
    err = failure(smp, pod(), {"spec": {"containers": [{"name": "app", "$patch": "bogus"}]}})
    assert err.message == "unknown patch type: bogus in map: map[$patch:bogus name:app]"


def test_retain_keys_clears_unlisted_fields() -> None:
    deploy = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    out = smp(deploy, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = smp(pod(), {"spec": {"volumes": [{"name": "cfg", "$retainKeys": ["name", "secret"],
                                            "secret": {"secretName": "s"}}]}})
    assert out["spec"]["volumes"][1] == {"name": "cfg", "secret": {"secretName": "s"}}


def test_retain_keys_must_list_every_patched_field() -> None:
    for bad in ({"$retainKeys": ["type"], "rollingUpdate": {}}, {"$retainKeys": "type"}):
        err = failure(smp, {"spec": {"strategy": {}}}, {"spec": {"strategy": bad}}, "Deployment")
        assert (err.code, err.reason, err.message) == (400, "BadRequest", "invalid patch format of retainKeys")


def test_delete_from_primitive_list() -> None:
    out = smp(pod(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/f", "missing"]}})
    assert out["metadata"]["finalizers"] == ["b.example/f"]
    out = smp(pod(), {"spec": {"containers": [{"name": "app", "$deleteFromPrimitiveList/args": ["--a"]}]}})
    assert out["spec"]["containers"][0]["args"] == ["--b"]  # works without a merge strategy too
    out = smp(pod(), {"metadata": {"$deleteFromPrimitiveList/absent": ["x"]}})
    assert "absent" not in out["metadata"]
    err = failure(smp, pod(), {"metadata": {"$deleteFromPrimitiveListX/finalizers": ["a"]}})
    assert (err.code, err.message) == (400, "invalid patch format of primitive list")


def test_set_element_order_for_maps_and_primitives() -> None:
    out = smp(pod(), {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                               "containers": [{"name": "app", "image": "app:2"}]}})
    assert names(out["spec"]["containers"]) == ["sidecar", "app"]
    assert out["spec"]["containers"][1]["image"] == "app:2"
    out = smp(pod(), {"metadata": {"$setElementOrder/finalizers": ["c", "b.example/f", "a.example/f"],
                                   "finalizers": ["c"]}})
    assert out["metadata"]["finalizers"] == ["c", "b.example/f", "a.example/f"]
    # Items absent from the directive are interleaved by their live position (upstream mergeSortedSlice).
    live = {"spec": {"containers": [{"name": "app"}, {"name": "sidecar"}, {"name": "x"}]}}
    out = smp(live, {"spec": {"$setElementOrder/containers": [{"name": "x"}, {"name": "app"}]}})
    assert names(out["spec"]["containers"]) == ["sidecar", "x", "app"]
    out = smp(pod(), {"spec": {"containers": [{"name": "new"}],
                               "$setElementOrder/containers": [{"name": "new"}, {"name": "app"}]}})
    assert names(out["spec"]["containers"]) == ["new", "app", "sidecar"]


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    err = failure(smp, pod(), {"spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                                        "containers": [{"name": "sidecar"}, {"name": "app"}]}})
    assert err.code == 500 and "doesn't match $setElementOrder list" in err.message
    err = failure(smp, pod(), {"metadata": {"$setElementOrderfinalizers": []}})
    assert (err.code, err.message) == (400, "invalid patch format of setElementOrder list")


def test_unknown_dollar_keys_are_dropped() -> None:
    out = smp(pod(), {"metadata": {"$bogus": 1, "annotations": {"a": "b", "$x": "y"}}})
    assert "$bogus" not in out["metadata"] and out["metadata"]["annotations"] == {"a": "b"}


def test_missing_merge_key_is_a_500_like_upstream() -> None:
    err = failure(smp, pod(), {"spec": {"containers": [{"image": "x"}]}})
    assert (err.code, err.reason) == (500, "")
    assert err.message == "map: map[image:x] does not contain declared merge key: name"


def test_malformed_lists_are_rejected() -> None:
    err = failure(smp, {"spec": {"podCIDRs": [["a"]]}}, {"spec": {"podCIDRs": [["b"]]}}, "Node")
    assert (err.code, err.reason, err.message) == (422, "Invalid", REJECTED)
    err = failure(smp, {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": [1]}}, "Pod")
    assert err.code == 500 and err.message.startswith("list element types are not identical")


def test_strategic_merge_patch_on_custom_resources_is_415() -> None:
    err = failure(smp, {}, {}, None)
    assert (err.code, err.reason) == (415, "UnsupportedMediaType")
    err = failure(apply_patch, {"spec": {}}, b"{}", STRATEGIC_MERGE_PATCH, None)
    assert err.code == 415
    assert err.message.endswith("application/json-patch+json, application/merge-patch+json, "
                                "application/apply-patch+yaml")


# -- apply_patch: content types and decoding ----------------------------------------------------------


def test_content_type_parameters_are_ignored() -> None:
    out = apply_patch(pod(), b'{"metadata":{"labels":{"x":"y"}}}', MERGE_PATCH + "; charset=utf-8", "Pod")
    assert out["metadata"]["labels"]["x"] == "y"


def test_unknown_content_type_is_415() -> None:
    err = failure(apply_patch, pod(), b"{}", "application/json", "Pod")
    assert (err.code, err.reason, err.message) == (415, "UnsupportedMediaType", "415: Unsupported Media Type")
    err = failure(apply_patch, {}, b"{}", "text/plain", None)
    assert err.code == 415 and "accepted media types include" in err.message


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"{bad", MERGE_PATCH, "error decoding patch: invalid character 'b' looking for beginning of object key string"),
    (b'{"a": }', MERGE_PATCH, "error decoding patch: invalid character '}' looking for beginning of value"),
    (b'{"a" 1}', MERGE_PATCH, "error decoding patch: invalid character '1' after object key"),
    (b'{"a": 1 "b": 2}', STRATEGIC_MERGE_PATCH, "invalid character '\"' after object key:value pair"),
    (b'[{"op": "add"} {}]', JSON_PATCH, "error decoding patch: invalid character '{' after array element"),
    (b'{"a": 1}x', MERGE_PATCH, "error decoding patch: invalid character 'x' after top-level value"),
    (b'{"a": trux}', MERGE_PATCH, "error decoding patch: invalid character 'x' in literal true (expecting 'e')"),
    (b'{"a": NaN}', MERGE_PATCH, "error decoding patch: invalid character 'N' looking for beginning of value"),
    (b'{"a": 1', JSON_PATCH, "error decoding patch: unexpected end of JSON input"),
    (b"", MERGE_PATCH, "error decoding patch: unexpected end of JSON input"),
    (b"[]", MERGE_PATCH, "error decoding patch: json: cannot unmarshal array into Go value of type "
                         "map[string]interface {}"),
    (b'"x"', STRATEGIC_MERGE_PATCH, "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    (b"null", MERGE_PATCH, "Invalid JSON Patch"),
    (b"{}", JSON_PATCH, "error decoding patch: json: cannot unmarshal object into Go value of type "
                        "[]handlers.jsonPatchOp"),
    (b"[1]", JSON_PATCH, "error decoding patch: json: cannot unmarshal number into Go value of type "
                         "handlers.jsonPatchOp"),
    (b'[{"op": "add", "path": 5}]', JSON_PATCH, "error decoding patch: json: cannot unmarshal number into Go "
                                                "struct field jsonPatchOp.path of type string"),
])
def test_malformed_bodies_are_400_with_go_messages(body: bytes, content_type: str, message: str) -> None:
    err = failure(apply_patch, pod(), body, content_type, "Pod")
    assert (err.code, err.reason, err.message) == (400, "BadRequest", message)


def test_strategic_merge_patch_through_apply_patch() -> None:
    out = apply_patch(pod(), b'{"spec":{"containers":[{"name":"sidecar","image":"side:2"}]}}',
                      STRATEGIC_MERGE_PATCH, "Pod")
    assert [c["image"] for c in out["spec"]["containers"]] == ["app:1", "side:2"]
    assert apply_patch(pod(), b"null", STRATEGIC_MERGE_PATCH, "Pod") == pod()


# -- JSON patch ---------------------------------------------------------------------------------------


def json_patch(original: dict, ops: list[dict]) -> dict:
    return apply_patch(original, json.dumps(ops).encode(), JSON_PATCH, "Pod")


def test_json_patch_operations() -> None:
    original = pod()
    out = json_patch(original, [
        {"op": "test", "path": "/metadata/name", "value": "web"},
        {"op": "add", "path": "/metadata/labels/new", "value": "1"},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "third"}},
        {"op": "remove", "path": "/metadata/labels/tier"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "app:3"},
        {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/annotations"},
        {"op": "move", "from": "/spec/tolerations", "path": "/spec/oldTolerations"},
    ])
    assert out["metadata"]["labels"] == {"app": "web", "new": "1"}
    assert out["metadata"]["annotations"] == "web"
    assert names(out["spec"]["containers"]) == ["app", "sidecar", "third"]
    assert out["spec"]["containers"][0]["image"] == "app:3"
    assert "tolerations" not in out["spec"] and out["spec"]["oldTolerations"] == [{"key": "k1", "operator": "Exists"}]
    assert original == pod()


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/metadata/name", "value": "other"}],
    [{"op": "test", "path": "/metadata/missing", "value": "x"}],
    [{"op": "remove", "path": "/metadata/missing"}],
    [{"op": "replace", "path": "/metadata/missing", "value": 1}],
    [{"op": "add", "path": "/no/such/parent", "value": 1}],
    [{"op": "move", "from": "/missing", "path": "/x"}],
    [{"op": "copy", "from": "/missing", "path": "/x"}],
    [{"op": "frobnicate", "path": "/x"}],
    [{"path": "/x"}],
    [{"op": "add", "value": 1}],
    [None],
    [{"op": "add", "path": "/spec/containers/9", "value": {}}],
])
def test_json_patch_failures_are_422_without_detail(ops: list[Any]) -> None:
    err = failure(json_patch, pod(), ops)
    assert (err.code, err.reason, err.message) == (422, "Invalid", REJECTED)
    assert err.to_status()["details"] == {}


def test_json_patch_must_leave_an_object_and_is_limited() -> None:
    err = failure(json_patch, pod(), [{"op": "replace", "path": "", "value": [1]}])
    assert (err.code, err.reason) == (422, "Invalid") and "patch: Invalid value" in err.message
    err = failure(json_patch, pod(), [{"op": "test", "path": "/kind", "value": "Pod"}] * 10001)
    assert (err.code, err.reason) == (413, "RequestEntityTooLarge")
    assert json_patch(pod(), []) == pod()
    assert apply_patch(pod(), b"null", JSON_PATCH, "Pod") == pod()


# -- JSON merge patch ---------------------------------------------------------------------------------


def test_merge_patch_semantics() -> None:
    out = apply_patch(pod(), json.dumps({
        "metadata": {"labels": {"tier": None, "x": "y"}, "finalizers": ["z"]},
        "spec": {"containers": [{"name": "only"}], "nodeSelector": {"a": None, "b": "c"}},
        "status": None}).encode(), MERGE_PATCH, None)
    assert out["metadata"]["labels"] == {"app": "web", "x": "y"}
    assert out["metadata"]["finalizers"] == ["z"]  # lists are replaced, never merged
    assert out["spec"]["containers"] == [{"name": "only"}]
    assert out["spec"]["nodeSelector"] == {"b": "c"}
    assert "status" not in out


def test_json_merge_patch_function() -> None:
    assert json_merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}
    assert json_merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert json_merge_patch({"a": 1}, [1, None]) == [1, None]
    assert json_merge_patch("x", {"a": {"b": None, "c": 1}}) == {"a": {"c": 1}}
    assert json_merge_patch({"a": 1}, {"b": [{"c": None, "d": 1}]}) == {"a": 1, "b": [{"d": 1}]}  # evanphx


# -- server-side apply (approximation) ---------------------------------------------------------------


def test_apply_patch_yaml_merges_configuration() -> None:
    body = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    extra: 'yes'\n" \
           b"  annotations:\n    at: 2024-01-01T00:00:00Z\nspec:\n  containers:\n  - name: app\n    image: app:7\n"
    out = apply_patch(pod(), body, APPLY_PATCH, "Pod")
    assert out["metadata"]["labels"] == {"app": "web", "tier": "fe", "extra": "yes"}
    assert out["metadata"]["annotations"] == {"at": "2024-01-01T00:00:00Z"}
    assert [c["image"] for c in out["spec"]["containers"]] == ["app:7", "side:1"]
    out = apply_patch({"spec": {"items": [1, 2]}}, b"spec:\n  items: [3]\n", APPLY_PATCH, None)
    assert out == {"spec": {"items": [3]}}


def test_apply_patch_rejects_bad_yaml() -> None:
    err = failure(apply_patch, pod(), b"a: [1", APPLY_PATCH, "Pod")
    assert (err.code, err.reason) == (400, "BadRequest")
    assert err.message.startswith("error decoding YAML: error converting YAML to JSON: yaml: line 1: ")
    err = failure(apply_patch, pod(), b"- 1\n- 2\n", APPLY_PATCH, "Pod")
    assert err.message == ("error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot "
                           "unmarshal array into Go value of type map[string]interface {}")
    assert apply_patch(pod(), b"", APPLY_PATCH, "Pod") == pod()


JSON_BODIES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3)
    | st.sampled_from(["x", "name", "replace", "delete", "merge", "add", "remove", "test", "/spec", "/a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["name", "spec", "containers", "env", "finalizers", "metadata", "$patch", "$retainKeys", "op", "path",
         "value", "from", "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers"]), inner, max_size=3),
    max_leaves=15)


@settings(max_examples=300, deadline=None)
@given(JSON_BODIES, JSON_BODIES, st.sampled_from([JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]),
       st.sampled_from(["Pod", "Deployment", None]))
def test_any_body_gives_an_object_or_an_api_error(original: Any, body: Any, content_type: str,
                                                  kind: str | None) -> None:
    original = original if isinstance(original, dict) else {"spec": original}
    before = copy.deepcopy(original)
    try:
        assert isinstance(apply_patch(original, json.dumps(body).encode(), content_type, kind), dict)
    except ApiError as err:
        assert err.code in (400, 413, 415, 422, 500)
    assert original == before


# -- properties ---------------------------------------------------------------------------------------

KEYS = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(alphabet="xyz", max_size=3)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(KEYS, inner, max_size=3), max_leaves=12)
OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=4)
# Patches that only set scalars or maps (no lists): strategic and JSON merge patch must agree on them.
MAP_PATCHES = st.recursive(SCALARS, lambda inner: st.dictionaries(KEYS, inner, max_size=3), max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(OBJECTS)
def test_empty_patches_are_identities(obj: dict) -> None:
    assert json_merge_patch(obj, {}) == obj
    assert strategic_merge_patch(obj, {}, "Pod") == obj
    assert apply_patch(obj, b"{}", MERGE_PATCH, None) == obj


@settings(max_examples=300, deadline=None)
@given(OBJECTS, st.dictionaries(KEYS, MAP_PATCHES, max_size=4))
def test_strategic_patch_without_lists_equals_merge_patch(obj: dict, patch: dict) -> None:
    before = copy.deepcopy(obj)
    assert strategic_merge_patch(obj, patch, "ConfigMap") == json_merge_patch(obj, patch)
    assert obj == before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abcdef"), max_size=5, unique=True), st.lists(st.sampled_from("abcdefg"),
                                                                              max_size=5))
def test_finalizer_patches_are_order_preserving_unions(live: list[str], patch: list[str]) -> None:
    out = strategic_merge_patch({"metadata": {"finalizers": live}}, {"metadata": {"finalizers": patch}}, "Pod")
    merged = out["metadata"]["finalizers"]
    assert sorted(merged) == sorted(set(live) | set(patch))
    assert [f for f in merged if f in patch] == list(dict.fromkeys(patch))  # patch order wins
    assert [f for f in merged if f not in patch] == [f for f in live if f not in patch]
