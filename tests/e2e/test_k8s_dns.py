"""The test kit's cluster DNS: CoreDNS (toolchain/coredns.sh) beside the real node's kubelet (scripts/k8s-node.sh).

What a pod on the kit's real node relies on (tfbox's notebook finds its TensorBoard pod this way): a pod behind a
headless Service is found by another pod as `<svc>.<namespace>.svc` (the pod's search path) and as the full
`<svc>.<namespace>.svc.cluster.local`, both answer with that pod's own address, and connecting there reaches it;
an unknown name fails at once rather than hanging the pod. And the kit: stopping the cluster stops CoreDNS too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.k8s import Cluster, processes_under, start_real_node_cluster, stop_cluster

NAME = "k8sdns"
NODE = "dns-1"
NS = "dns-check"
MARKER = f"served-{secrets.token_hex(4)}"

# the client's check, run in the client pod: what the pod's resolver answers and how long an unknown name takes
PROBE = '''
import json, socket, time, urllib.request
def resolve(name):
    started = time.monotonic()
    try:
        found = sorted({a[4][0] for a in socket.getaddrinfo(name, 8080, socket.AF_INET, socket.SOCK_STREAM)})
    except socket.gaierror as e:
        found = "error: %s" % e
    return {"addresses": found, "seconds": round(time.monotonic() - started, 2)}
out = {n: resolve(n) for n in ("web.dns-check.svc", "web.dns-check.svc.cluster.local",
                               "nothing-here.dns-check.svc", "no-such-name-tfbox-kit")}
out["body"] = urllib.request.urlopen("http://web.dns-check.svc:8080/", timeout=10).read().decode().strip()
out["resolv.conf"] = open("/etc/resolv.conf").read()
print(json.dumps(out))
'''


def manifests(image: str) -> str:
    pod = '''{{"apiVersion": "v1", "kind": "Pod",
     "metadata": {{"name": "{name}", "namespace": "{ns}", "labels": {{"app": "{name}"}}}},
     "spec": {{"terminationGracePeriodSeconds": 1, "containers": [{{
         "name": "main", "image": "{image}", "imagePullPolicy": "IfNotPresent",
         "command": ["sh", "-c", {command}]{probe}}}]}}}}'''
    serve = f"mkdir -p /srv && echo {MARKER} >/srv/index.html && cd /srv && exec python3 -m http.server 8080"
    probe = ', "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}'
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        json.loads(pod.format(name="web", ns=NS, image=image, command=json.dumps(serve), probe=probe)),
        json.loads(pod.format(name="client", ns=NS, image=image, command=json.dumps("exec sleep 3600"), probe="")),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 8080}]}},
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


@pytest.fixture(scope="module")
def cluster(k8s_kit: Path, cpu_image: str) -> Iterator[Cluster]:
    c = start_real_node_cluster(NAME, NODE, image=cpu_image)
    try:
        yield c
    finally:
        stop_cluster(NAME)


def test_a_pod_finds_a_headless_service_by_name_and_unknown_names_fail_fast(cluster: Cluster, cpu_image: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=manifests(cpu_image))
    cluster.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/web", "pod/client", "--timeout=180s",
                    timeout=200)
    web_ip = cluster.get("pod", "-n", NS, "web")["status"]["podIP"]
    gateway = node_dns_address(cluster)

    done = cluster.kubectl("exec", "-n", NS, "client", "--", "python3", "-c", PROBE, timeout=120)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    resolv = out.pop("resolv.conf")
    assert f"nameserver {gateway}" in resolv, resolv
    assert f"search {NS}.svc.cluster.local svc.cluster.local cluster.local" in resolv, resolv
    # the headless Service's names answer with the ready pod's own address, through the search path and in full
    assert out["web.dns-check.svc"]["addresses"] == [web_ip], out
    assert out["web.dns-check.svc.cluster.local"]["addresses"] == [web_ip], out
    assert out["body"] == MARKER, out
    # unknown names fail, and at once: an in-cluster one (CoreDNS's own NXDOMAIN) and one that goes through the
    # whole search path and then to the host's resolvers
    for name in ("nothing-here.dns-check.svc", "no-such-name-tfbox-kit"):
        assert str(out[name]["addresses"]).startswith("error:"), out
        assert out[name]["seconds"] < 3, out


def test_stopping_the_cluster_stops_its_dns(cluster: Cluster) -> None:
    running = [p for p in processes_under(cluster.run_dir) if "coredns" in p]
    assert running, "no CoreDNS of the cluster is running"
    stop_cluster(NAME, purge=False)
    left = processes_under(cluster.run_dir)
    assert not left, "still running after scripts/k8s.sh stop:\n" + "\n".join(left)


def node_dns_address(cluster: Cluster) -> str:
    """The node's InternalIP: the pod bridge's gateway, where the cluster's CoreDNS listens."""
    node = cluster.get("node", NODE)
    return str(next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"))
