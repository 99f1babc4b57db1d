"""CustomResourceDefinitions at run time: discovery, schema validation/pruning/defaulting, CEL,
subresources and cleanup — through the official kubernetes client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import wait_for

GROUP, VERSION, PLURAL = "example.ballast.dev", "v1", "widgets"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas"}},
            "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["replicas"],
                        "x-kubernetes-validations": [
                            {"rule": "self.minInsync < self.replicas", "message": "minInsync must be below replicas"},
                        ],
                        "properties": {
                            "replicas": {"type": "integer", "minimum": 1, "maximum": 9},
                            "minInsync": {"type": "integer", "default": 0},
                            "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                            "size": {"type": "string",
                                     "x-kubernetes-validations": [{"rule": "self == oldSelf || self > oldSelf",
                                                                   "message": "size may not shrink"}]},
                        },
                    },
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"},
                        "phase": {"type": "string"},
                    }},
                },
            }},
        }],
    },
}


@pytest.fixture
def widgets(api_client: client.ApiClient) -> client.CustomObjectsApi:
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(WIDGET_CRD)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, message="CRD Established")
    return client.CustomObjectsApi(api_client)


def _widget(name: str, **spec: object) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name},
            "spec": {"replicas": 3, **spec}}


def _create(api: client.CustomObjectsApi, body: dict) -> dict:
    return api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)


def test_crd_appears_in_discovery(widgets: client.CustomObjectsApi, api_client: client.ApiClient) -> None:
    groups = {g.name: g for g in client.ApisApi(api_client).get_api_versions().groups}
    assert groups[GROUP].preferred_version.group_version == f"{GROUP}/{VERSION}"
    listed = widgets.get_api_resources(GROUP, VERSION)
    names = {r.name: r for r in listed.resources}
    assert names[PLURAL].kind == "Widget" and names[PLURAL].short_names == ["wd"]
    assert {"widgets/status", "widgets/scale"} <= set(names)
    # The names were accepted (no conflict) before the CRD became Established, with upstream's texts.
    crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    conds = {c.type: c for c in crd.status.conditions}
    assert [c.type for c in crd.status.conditions] == ["NamesAccepted", "Established"]
    assert (conds["NamesAccepted"].status, conds["NamesAccepted"].reason, conds["NamesAccepted"].message) == \
        ("True", "NoConflicts", "no conflicts found")
    assert (conds["Established"].status, conds["Established"].reason, conds["Established"].message) == \
        ("True", "InitialNamesAccepted", "the initial names have been accepted")
    accepted = crd.status.accepted_names
    assert (accepted.plural, accepted.singular, accepted.kind, accepted.list_kind, accepted.short_names) == \
        (PLURAL, "widget", "Widget", "WidgetList", ["wd"])
    assert crd.status.stored_versions == [VERSION]


def test_custom_resource_crud_and_defaults(widgets: client.CustomObjectsApi) -> None:
    created = _create(widgets, _widget("w1", unknown="dropped"))
    assert created["spec"] == {"replicas": 3, "minInsync": 0, "mode": "safe"}  # pruned and defaulted
    assert created["metadata"]["generation"] == 1 and isinstance(created["metadata"]["resourceVersion"], str)
    listed = widgets.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    assert listed["items"][0]["kind"] == "Widget"  # custom resource list items keep their type


def test_schema_violations_are_422_with_causes(widgets: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        _create(widgets, _widget("w1", replicas="three"))
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Widget.example.ballast.dev "w1" is invalid: ')
    assert any(c["field"] == "spec.replicas" for c in body["details"]["causes"])
    with pytest.raises(ApiException) as err:
        _create(widgets, _widget("w2", replicas=12))
    assert "spec.replicas" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        _create(widgets, _widget("w3", mode="reckless"))
    assert 'Unsupported value: "reckless"' in json.loads(err.value.body)["message"]


def test_cel_rules_and_transition_rules(widgets: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        _create(widgets, _widget("w1", replicas=2, minInsync=2))
    assert err.value.status == 422 and "minInsync must be below replicas" in json.loads(err.value.body)["message"]
    _create(widgets, _widget("w2", size="b"))
    grown = widgets.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w2", {"spec": {"size": "c"}})
    assert grown["spec"]["size"] == "c"
    with pytest.raises(ApiException) as err:
        widgets.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w2", {"spec": {"size": "a"}})
    assert "size may not shrink" in json.loads(err.value.body)["message"]


def test_status_subresource_isolation(widgets: client.CustomObjectsApi) -> None:
    created = _create(widgets, {**_widget("w1"), "status": {"phase": "ignored-on-create"}})
    assert "status" not in created
    with_status = widgets.patch_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "w1",
                                                                {"status": {"phase": "Ready"},
                                                                 "spec": {"replicas": 7}})
    assert with_status["status"] == {"phase": "Ready"} and with_status["spec"]["replicas"] == 3
    assert with_status["metadata"]["generation"] == 1
    main = widgets.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1",
                                                  {"spec": {"replicas": 4}, "status": {"phase": "Lost"}})
    assert main["status"] == {"phase": "Ready"} and main["spec"]["replicas"] == 4
    assert main["metadata"]["generation"] == 2


def test_put_without_resource_version_is_422(widgets: client.CustomObjectsApi) -> None:
    created = _create(widgets, _widget("w1"))
    del created["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as err:
        widgets.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1", created)
    body = json.loads(err.value.body)
    assert err.value.status == 422
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in body["message"]


def test_strategic_merge_patch_on_custom_resource_is_415(widgets: client.CustomObjectsApi) -> None:
    _create(widgets, _widget("w1"))
    with pytest.raises(ApiException) as err:
        widgets.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1", {"spec": {"replicas": 2}},
                                               _content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415


def test_scale_subresource_for_custom_resources(widgets: client.CustomObjectsApi) -> None:
    _create(widgets, _widget("w1"))
    scale = widgets.get_namespaced_custom_object_scale(GROUP, VERSION, "default", PLURAL, "w1")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    widgets.patch_namespaced_custom_object_scale(GROUP, VERSION, "default", PLURAL, "w1", {"spec": {"replicas": 5}})
    assert widgets.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w1")["spec"]["replicas"] == 5


def test_deleting_the_crd_deletes_its_resources(widgets: client.CustomObjectsApi,
                                               api_client: client.ApiClient) -> None:
    _create(widgets, _widget("w1"))
    ext = client.ApiextensionsV1Api(api_client)
    ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")

    def gone() -> bool:
        try:
            ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, message="CRD deleted")
    with pytest.raises(ApiException) as err:
        widgets.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert err.value.status == 404


def test_invalid_crd_is_rejected(api_client: client.ApiClient) -> None:
    bad = json.loads(json.dumps(WIDGET_CRD))
    bad["metadata"]["name"] = "wrong.example.ballast.dev"
    with pytest.raises(ApiException) as err:
        client.ApiextensionsV1Api(api_client).create_custom_resource_definition(bad)
    body = json.loads(err.value.body)
    assert err.value.status == 422 and 'must be spec.names.plural+"."+spec.group' in body["message"]
