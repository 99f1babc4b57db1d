"""What a container sees: its environment, command line and the files its volumes mount, as kubelet builds them.

Pure functions over API objects (dicts); the only inputs besides the pod are a ``Lookup`` for the
ConfigMaps and Secrets of the pod's namespace and the Services that feed service-link variables.

Contracts, matching kubelet 1.36 (``makeEnvironmentVariables``, ``expansion.Expand``, the configMap /
secret / projected / downwardAPI volume plugins):

- ``envFrom`` entries are applied first, in order, then ``env`` entries in order; a later entry
  overrides an earlier one, so ``env`` wins over ``envFrom``. ``envFrom`` keys are taken as they are
  (with the prefix): since ``RelaxedEnvironmentVariableValidation`` went GA kubelet no longer drops
  keys that are not C identifiers.
- ``value`` is expanded: ``$(NAME)`` becomes the value of ``NAME`` if it was defined *before* (by
  ``envFrom`` or an earlier ``env`` entry) or is a service variable; an unknown reference stays as
  written; ``$$`` is an escaped ``$``.
- A missing required ConfigMap/Secret or key raises ``ContainerConfigError`` with kubelet's message
  (``configmap "x" not found``, ``couldn't find key k in ConfigMap ns/x``); the container then waits
  in ``CreateContainerConfigError``. ``optional: true`` skips the variable instead.
- ``command``/``args`` are expanded against the final environment.
- Volume resolution returns ``{absolute path: bytes}``; a missing required source raises
  ``VolumeMountError`` (kubelet reports it as ``FailedMount`` and keeps the pod in ContainerCreating).
"""

from __future__ import annotations

import base64
import json
import math
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from devcluster.builtins import parse_quantity

Obj = dict[str, Any]


class ContainerConfigError(Exception):
    """The container cannot be created (kubelet's ``CreateContainerConfigError``); ``str()`` is the message."""


class VolumeMountError(Exception):
    """A volume cannot be set up; ``volume`` is its name and ``str()`` the plugin's message."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume


class Lookup(Protocol):
    """ConfigMaps and Secrets of the pod's namespace by name (``None`` when absent)."""

    def configmap(self, name: str) -> Obj | None: ...

    def secret(self, name: str) -> Obj | None: ...


@dataclass
class DictLookup:
    """A ``Lookup`` over plain dicts (tests, snapshots)."""

    configmaps: Mapping[str, Obj] = field(default_factory=dict)
    secrets: Mapping[str, Obj] = field(default_factory=dict)

    def configmap(self, name: str) -> Obj | None:
        return self.configmaps.get(name)

    def secret(self, name: str) -> Obj | None:
        return self.secrets.get(name)


@dataclass(frozen=True)
class PodNetwork:
    """The addresses the downward API exposes; ``node_allocatable`` stands in for unset limits."""

    pod_ips: tuple[str, ...] = ()
    host_ips: tuple[str, ...] = ()
    node_allocatable: Mapping[str, str] = field(default_factory=dict)


# -- $(VAR) expansion (k8s.io/kubernetes third_party/forked/golang/expansion) ------------------------------
def expand(text: str, *contexts: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` references; ``$$`` escapes a ``$``; unknown names are left verbatim."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2:close]
                    out.append(_lookup_var(name, contexts))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _lookup_var(name: str, contexts: Iterable[Mapping[str, str]]) -> str:
    for ctx in contexts:
        if name in ctx:
            return ctx[name]
    return f"$({name})"


# -- service links ------------------------------------------------------------------------------------
def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(services: Iterable[Obj], namespace: str, enable_service_links: bool = True) -> dict[str, str]:
    """The Docker-link style variables kubelet injects (``KUBERNETES_SERVICE_HOST``, ``<SVC>_PORT``...).

    The ``kubernetes`` service of ``default`` is always included; other services only from the pod's
    namespace and only with ``enableServiceLinks``. Headless services contribute nothing.
    """
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("clusterIP") in (None, "", "None") or not spec.get("ports"):
            continue
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if ns == "default" and name == "kubernetes":
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name, svc in chosen.items():
        spec = svc["spec"]
        ip, ports, prefix = spec["clusterIP"], spec["ports"], _env_name(name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p["port"])
        for i, p in enumerate(ports):
            proto = str(p.get("protocol") or "TCP")
            url = f"{proto.lower()}://{ip}:{p['port']}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            port_prefix = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = proto.lower()
            env[f"{port_prefix}_PORT"] = str(p["port"])
            env[f"{port_prefix}_ADDR"] = ip
    return env


# -- downward API -------------------------------------------------------------------------------------
def _format_map(m: Mapping[str, str]) -> str:
    # Go's %q on ASCII strings matches JSON string quoting.
    return "\n".join(f"{k}={json.dumps(m[k], ensure_ascii=False)}" for k in sorted(m))


def field_ref_value(pod: Obj, field_path: str, net: PodNetwork) -> str:
    """``fieldRef.fieldPath`` as kubelet resolves it; unsupported paths raise ``ContainerConfigError``."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": net.pod_ips[0] if net.pod_ips else "",
        "status.podIPs": ",".join(net.pod_ips),
        "status.hostIP": net.host_ips[0] if net.host_ips else "",
        "status.hostIPs": ",".join(net.host_ips),
    }
    if field_path in simple:
        return str(simple[field_path])
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        values = meta.get(source) or {}
        if field_path == prefix:
            return _format_map(values)
        if field_path.startswith(prefix + "[") and field_path.endswith("]"):
            key = field_path[len(prefix) + 1:-1].strip("'\"")
            return str(values.get(key, ""))
    raise ContainerConfigError(f'unsupported fieldPath: "{field_path}"')


def _container_resources(pod: Obj, container: Obj, name: str | None) -> Obj:
    if not name:
        return container
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == name:
            return c
    raise ContainerConfigError(f"container {name} not found")


def resource_field_value(pod: Obj, container: Obj, ref: Obj, net: PodNetwork) -> str:
    """``resourceFieldRef``: requests default to limits, limits to node allocatable; rounded up by divisor."""
    target = _container_resources(pod, container, ref.get("containerName"))
    resource = str(ref.get("resource", ""))
    kind, _, res_name = resource.partition(".")
    resources = target.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if kind == "limits":
        quantity = limits.get(res_name, net.node_allocatable.get(res_name, "0"))
    elif kind == "requests":
        quantity = requests.get(res_name, limits.get(res_name, "0"))
    else:
        raise ContainerConfigError(f"unsupported container resource : {resource}")
    divisor = parse_quantity(ref.get("divisor") or "1") or 1.0
    value = parse_quantity(quantity)
    if res_name == "cpu":
        # kubelet works in millicores: ceil(milli(value) / milli(divisor)).
        return str(math.ceil(round(value * 1000) / round(divisor * 1000)))
    return str(math.ceil(value / divisor))


# -- environment --------------------------------------------------------------------------------------
def _secret_value(secret: Obj, key: str) -> str | None:
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return None
    return base64.b64decode(raw).decode("utf-8", errors="replace")


def resolve_env(pod: Obj, container: Obj, lookup: Lookup, net: PodNetwork,
                services: Iterable[Obj] = ()) -> dict[str, str]:
    """The container's final environment (declared variables first, then the remaining service variables)."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
    svc_env = service_env(services, namespace, links)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if source.get("configMapRef") is not None:
            ref = source["configMapRef"]
            cm = lookup.configmap(ref.get("name", ""))
            if cm is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'configmap "{ref.get("name", "")}" not found')
            for k, v in (cm.get("data") or {}).items():
                env[prefix + k] = str(v)
        elif source.get("secretRef") is not None:
            ref = source["secretRef"]
            secret = lookup.secret(ref.get("name", ""))
            if secret is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'secret "{ref.get("name", "")}" not found')
            for k in secret.get("data") or {}:
                env[prefix + k] = _secret_value(secret, k) or ""
    for var in container.get("env") or []:
        name = var.get("name", "")
        value = var.get("value")
        source = var.get("valueFrom")
        if value:
            env[name] = expand(str(value), env, svc_env)
        elif source:
            resolved = _value_from(pod, container, source, lookup, net, namespace)
            if resolved is None:
                continue  # optional and absent
            env[name] = resolved
        else:
            env[name] = ""
    for k, v in svc_env.items():
        env.setdefault(k, v)
    return env


def _value_from(pod: Obj, container: Obj, source: Obj, lookup: Lookup, net: PodNetwork,
                namespace: str) -> str | None:
    if source.get("fieldRef"):
        return field_ref_value(pod, str(source["fieldRef"].get("fieldPath", "")), net)
    if source.get("resourceFieldRef"):
        return resource_field_value(pod, container, source["resourceFieldRef"], net)
    if source.get("configMapKeyRef"):
        ref = source["configMapKeyRef"]
        name, key = ref.get("name", ""), ref.get("key", "")
        cm = lookup.configmap(name)
        if cm is None:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f'configmap "{name}" not found')
        data = cm.get("data") or {}
        if key not in data:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f"couldn't find key {key} in ConfigMap {namespace}/{name}")
        return str(data[key])
    if source.get("secretKeyRef"):
        ref = source["secretKeyRef"]
        name, key = ref.get("name", ""), ref.get("key", "")
        secret = lookup.secret(name)
        if secret is None:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f'secret "{name}" not found')
        value = _secret_value(secret, key)
        if value is None:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f"couldn't find key {key} in Secret {namespace}/{name}")
        return value
    return ""


def resolve_command(container: Obj, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``command`` and ``args`` with ``$(VAR)`` expanded against the final environment."""
    command = [expand(str(a), env) for a in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    return command, args


# -- volumes ------------------------------------------------------------------------------------------
def _configmap_payload(volume: str, src: Obj, lookup: Lookup) -> dict[str, bytes]:
    name = src.get("name", "")
    cm = lookup.configmap(name)
    if cm is None:
        if src.get("optional"):
            return {}
        raise VolumeMountError(volume, f'configmap "{name}" not found')
    data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return _apply_items(volume, data, src, "configmap references non-existent config key")


def _secret_payload(volume: str, src: Obj, lookup: Lookup, name_key: str) -> dict[str, bytes]:
    name = src.get(name_key, "")
    secret = lookup.secret(name)
    if secret is None:
        if src.get("optional"):
            return {}
        raise VolumeMountError(volume, f'secret "{name}" not found')
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return _apply_items(volume, data, src, "references non-existent secret key")


def _apply_items(volume: str, data: dict[str, bytes], src: Obj, missing: str) -> dict[str, bytes]:
    items = src.get("items")
    if not items:
        return data
    out: dict[str, bytes] = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if src.get("optional"):
                continue
            raise VolumeMountError(volume, f"{missing}: {key}")
        out[item.get("path") or key] = data[key]
    return out


def _downward_payload(pod: Obj, container: Obj, items: list[Obj], net: PodNetwork,
                      volume: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for item in items:
        try:
            if item.get("fieldRef"):
                value = field_ref_value(pod, str(item["fieldRef"].get("fieldPath", "")), net)
            elif item.get("resourceFieldRef"):
                value = resource_field_value(pod, container, item["resourceFieldRef"], net)
            else:
                continue
        except ContainerConfigError as err:
            raise VolumeMountError(volume, str(err)) from None
        out[item.get("path", "")] = value.encode()
    return out


def service_account_token(pod: Obj, audience: str | None = None) -> bytes:
    """A stand-in for a bound token: JWT-shaped, unsigned, naming the pod's service account."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    claims = {"aud": [audience or "https://kubernetes.default.svc.cluster.local"],
              "sub": f"system:serviceaccount:{meta.get('namespace', '')}:{spec.get('serviceAccountName') or 'default'}",
              "kubernetes.io": {"namespace": meta.get("namespace", ""), "pod": {"name": meta.get("name", ""),
                                                                              "uid": meta.get("uid", "")}}}

    def seg(d: Obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'none', 'typ': 'JWT'})}.{seg(claims)}.".encode()


def volume_payload(pod: Obj, container: Obj, volume: Obj, lookup: Lookup, net: PodNetwork) -> dict[str, bytes] | None:
    """Files of one volume by path relative to its root; ``None`` for volumes without API-sourced content."""
    name = volume.get("name", "")
    if volume.get("configMap") is not None:
        return _configmap_payload(name, volume["configMap"], lookup)
    if volume.get("secret") is not None:
        return _secret_payload(name, volume["secret"], lookup, "secretName")
    if volume.get("downwardAPI") is not None:
        return _downward_payload(pod, container, volume["downwardAPI"].get("items") or [], net, name)
    if volume.get("projected") is not None:
        out: dict[str, bytes] = {}
        for source in volume["projected"].get("sources") or []:
            if source.get("configMap") is not None:
                out.update(_configmap_payload(name, source["configMap"], lookup))
            elif source.get("secret") is not None:
                out.update(_secret_payload(name, source["secret"], lookup, "name"))
            elif source.get("downwardAPI") is not None:
                out.update(_downward_payload(pod, container, source["downwardAPI"].get("items") or [], net, name))
            elif source.get("serviceAccountToken") is not None:
                sat = source["serviceAccountToken"]
                out[sat.get("path", "token")] = service_account_token(pod, sat.get("audience"))
        return out
    return None


def mounted_files(pod: Obj, container: Obj, lookup: Lookup, net: PodNetwork,
                  env: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Every file the container's ``volumeMounts`` expose, keyed by absolute path inside the container.

    ``subPath`` (or ``subPathExpr``, expanded with ``env``) selects one file or directory of the volume.
    Raises ``VolumeMountError`` for a missing required ConfigMap/Secret or key.
    """
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    files: dict[str, bytes] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        if volume is None:
            continue
        payload = volume_payload(pod, container, volume, lookup, net)
        if payload is None:
            continue
        mount_path = str(mount.get("mountPath", "/"))
        sub = mount.get("subPath") or ""
        if not sub and mount.get("subPathExpr"):
            sub = expand(str(mount["subPathExpr"]), env or {})
        sub = sub.strip("/")
        for rel, data in payload.items():
            rel = rel.strip("/")
            if sub:
                if rel == sub:
                    files[posixpath.normpath(mount_path)] = data
                    continue
                if not rel.startswith(sub + "/"):
                    continue
                rel = rel[len(sub) + 1:]
            files[posixpath.normpath(posixpath.join(mount_path, rel))] = data
    return files
