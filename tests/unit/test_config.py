"""Operator configuration: every setting from a flag, else its environment variable, else the default; and
``KUBECONFIG`` lists loaded the way kubectl loads them.

The precedence tests parse real command lines with the ``ballast`` parser (``worker``, ``watch`` and
``operator`` share their flags) against an explicit environment, so nothing depends on the test runner's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.config.config_exception import ConfigException

from activities.clients import kube_api_client, kubeconfig_files
from ballast.cli import build_parser, settings_from_args
from ballast.config import KafkaAddressing, OperatorSettings, TemporalTLS
from ballast.messages import DEFAULT_TASK_QUEUE
from ballast.operator import _tls
from devcluster.cluster import DevClusterThread
from tests.conftest import Kubectl

# (flag, variable, the field, its default, a value for the flag, a value for the variable, the field's value
#  from each of them)
SETTINGS: list[tuple[str, str, str, Any, str, str, Any, Any]] = [
    ("--temporal-address", "TEMPORAL_ADDRESS", "temporal_address", "localhost:7233",
     "flag:7233", "env:7233", "flag:7233", "env:7233"),
    ("--temporal-namespace", "TEMPORAL_NAMESPACE", "temporal_namespace", "default",
     "from-flag", "from-env", "from-flag", "from-env"),
    ("--task-queue", "BALLAST_TASK_QUEUE", "task_queue", DEFAULT_TASK_QUEUE, "q-flag", "q-env", "q-flag", "q-env"),
    # No kubeconfig = the in-cluster service account (test_no_kubeconfig_means_in_cluster below).
    ("--kubeconfig", "KUBECONFIG", "kubeconfig", None, "/flag/config", "/env/a:/env/b",
     "/flag/config", "/env/a:/env/b"),
    ("--namespaces", "BALLAST_NAMESPACES", "namespaces", (), "kafka, team-a,", "ops",
     ("kafka", "team-a"), ("ops",)),
    ("--kafka-addressing", "BALLAST_KAFKA_ADDRESSING", "kafka_addressing", KafkaAddressing.CLUSTER_DNS,
     "devcluster", "devcluster", KafkaAddressing.DEVCLUSTER, KafkaAddressing.DEVCLUSTER),
    ("--temporal-tls-ca", "TEMPORAL_TLS_CA", "temporal_tls.ca_path", None, "/flag/ca.pem", "/env/ca.pem",
     "/flag/ca.pem", "/env/ca.pem"),
    ("--temporal-tls-server-name", "TEMPORAL_TLS_SERVER_NAME", "temporal_tls.server_name", None,
     "flag.example", "env.example", "flag.example", "env.example"),
]


def settings(argv: list[str], env: dict[str, str], command: str = "worker") -> OperatorSettings:
    args: argparse.Namespace = build_parser().parse_args([command, *argv])
    return settings_from_args(args, env)


def field(settings: OperatorSettings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("flag", "var", "path", "default", "flag_value", "env_value", "from_flag", "from_env"),
                         SETTINGS, ids=[s[1] for s in SETTINGS])
def test_flag_over_environment_over_default(flag: str, var: str, path: str, default: Any, flag_value: str,
                                            env_value: str, from_flag: Any, from_env: Any) -> None:
    assert field(settings([], {}), path) == default
    assert field(settings([], {var: env_value}), path) == from_env
    assert field(settings([], {var: "  "}), path) == default  # empty = unset
    if flag == "--kafka-addressing":  # two choices only: the flag overrides an env value that differs
        assert field(settings([flag, "devcluster"], {var: "cluster-dns"}), path) == KafkaAddressing.DEVCLUSTER
        assert field(settings([flag, "cluster-dns"], {var: "devcluster"}), path) == KafkaAddressing.CLUSTER_DNS
    else:
        assert field(settings([flag, flag_value], {var: env_value}), path) == from_flag
    assert field(settings([flag, flag_value], {}), path) == from_flag
    # The same flags on the other long-running commands.
    for command in ("watch", "operator"):
        assert field(settings([flag, flag_value], {var: env_value}, command), path) == from_flag


def test_temporal_tls_flag_over_environment_over_default() -> None:
    assert settings([], {}).temporal_tls == TemporalTLS(enabled=False)
    # The environment alone: TEMPORAL_TLS, or any TLS file turns it on; an explicit false wins over files.
    assert settings([], {"TEMPORAL_TLS": "true"}).temporal_tls.enabled
    mtls_env = {"TEMPORAL_TLS_CERT": "/env/c.pem", "TEMPORAL_TLS_KEY": "/env/k.pem"}
    assert settings([], mtls_env).temporal_tls == TemporalTLS(enabled=True, cert_path="/env/c.pem",
                                                              key_path="/env/k.pem")
    assert not settings([], {**mtls_env, "TEMPORAL_TLS": "false"}).temporal_tls.enabled

    # Flags win: --no-temporal-tls over TEMPORAL_TLS=true, --temporal-tls over TEMPORAL_TLS=false.
    assert not settings(["--no-temporal-tls"], {"TEMPORAL_TLS": "true", **mtls_env}).temporal_tls.enabled
    assert settings(["--temporal-tls"], {"TEMPORAL_TLS": "false"}).temporal_tls.enabled
    # A file flag turns TLS on whatever the environment said; files not given as flags fall back to it.
    tls = settings(["--temporal-tls-cert", "/flag/c.pem", "--temporal-tls-ca", "/flag/ca.pem"],
                   {**mtls_env, "TEMPORAL_TLS": "false", "TEMPORAL_TLS_CA": "/env/ca.pem"}).temporal_tls
    assert tls == TemporalTLS(enabled=True, cert_path="/flag/c.pem", key_path="/env/k.pem", ca_path="/flag/ca.pem")
    assert settings(["--temporal-tls-key", "/flag/k.pem", "--temporal-tls-cert", "/flag/c.pem"],
                    {}).temporal_tls == TemporalTLS(enabled=True, cert_path="/flag/c.pem", key_path="/flag/k.pem")

    # A certificate without its key is refused, naming where it came from.
    with pytest.raises(ValueError, match=r"^--temporal-tls-cert/--temporal-tls-key: .*give both or neither"):
        settings(["--temporal-tls-cert", "/flag/c.pem"], {})
    with pytest.raises(ValueError, match=r"^TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: .*give both or neither"):
        settings([], {"TEMPORAL_TLS_CERT": "/env/c.pem"})
    with pytest.raises(ValueError, match=r"^TEMPORAL_TLS: expected true or false, got 'maybe'"):
        settings([], {"TEMPORAL_TLS": "maybe"})


def test_tls_settings_reach_the_temporal_client_config(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_bytes(f"-----{name}-----".encode())
    tls = _tls(settings(["--temporal-tls-cert", str(tmp_path / "c.pem"), "--temporal-tls-key",
                         str(tmp_path / "k.pem"), "--temporal-tls-server-name", "temporal.internal"],
                        {"TEMPORAL_TLS_CA": str(tmp_path / "ca.pem")}))
    assert not isinstance(tls, bool)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        b"-----c.pem-----", b"-----k.pem-----", b"-----ca.pem-----", "temporal.internal")
    assert _tls(settings(["--temporal-tls"], {})) is not False
    assert _tls(settings([], {})) is False


def test_a_bad_setting_stops_the_command_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "BALLAST_"))}
    ballast = Path(sys.executable).parent / "ballast"
    proc = subprocess.run([str(ballast), "worker", "--temporal-tls-cert", "/nowhere/c.pem"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("ballast worker: --temporal-tls-cert/--temporal-tls-key: a client "
                                   "certificate and its key go together: give both or neither")


# -- KUBECONFIG ----------------------------------------------------------------------------------------------


def test_no_kubeconfig_means_in_cluster() -> None:
    # Outside a pod the in-cluster loader is what complains: proof that it, not a kubeconfig, was used.
    with pytest.raises(ConfigException, match="Service host/port is not set"):
        kube_api_client(OperatorSettings())


def test_kubeconfig_list_loads_like_kubectl(dc: DevClusterThread, kubeconfig: Path, kubectl: Kubectl,
                                            tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "elsewhere",
        "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "elsewhere"}}],
        "users": [{"name": "elsewhere", "user": {"token": "t"}}]}))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    own_context = yaml.safe_load(kubeconfig.read_text())["current-context"]

    # Missing and empty files are skipped; the first file that sets current-context decides it.
    value = os.pathsep.join([str(tmp_path / "missing.yaml"), str(empty), str(kubeconfig), str(elsewhere)])
    files, context = kubeconfig_files(value)
    assert files == [str(kubeconfig), str(elsewhere)] and context == own_context
    api = kube_api_client(OperatorSettings(kubeconfig=value))
    try:
        names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
        assert "default" in names  # reached devcluster, not the unreachable second cluster
    finally:
        api.close()

    # kubectl agrees, in both orders.
    for order, expected in (([kubeconfig, elsewhere], own_context), ([elsewhere, kubeconfig], "elsewhere")):
        joined = os.pathsep.join(str(p) for p in order)
        listed = Kubectl(kubectl.binary, Path(joined), kubectl.cache_dir)
        assert listed.run("config", "current-context").stdout.strip() == expected
        assert kubeconfig_files(joined)[1] == expected
        # ...and the client then talks to the cluster of that context.
        api = kube_api_client(OperatorSettings(kubeconfig=joined))
        try:
            assert api.configuration.host == ("https://127.0.0.1:1" if expected == "elsewhere"
                                              else yaml.safe_load(kubeconfig.read_text())["clusters"][0]
                                              ["cluster"]["server"])
        finally:
            api.close()

    with pytest.raises(ValueError, match="no kubeconfig found"):
        kubeconfig_files(os.pathsep.join([str(empty), str(tmp_path / "missing.yaml")]))
