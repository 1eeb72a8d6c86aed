"""A seat's Ingress (`tfbox:ingressHost`): a `kubernetes.io/tls` Secret with the seat's certificate and key, and a
`networking.k8s.io/v1` Ingress routing the host to the seat's notebook Service over HTTPS.

The manifests are pure functions (as components.kubernetes.objects), read as data by the tests; SeatIngress
declares them with pulumi-kubernetes. The route goes to Jupyter's port only, never TensorBoard's (no login: users
reach it behind the login at `/tensorboard/` with tfbox:tensorboardProxy). The notebook serves HTTPS itself, so the
controller talks HTTPS to it (ingress-nginx's backend-protocol annotation by default: components.model.ingress).
The key is a secret Output from the config to the Secret: never in plaintext in state, outputs or logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.model import commands
from components.model.ingress import IngressSettings

TLS_SECRET_TYPE = "kubernetes.io/tls"
INGRESS_ROLE = "ingress"


def tls_secret_name(service: str) -> str:
    """The Ingress's certificate Secret: tfbox's own, or the one cert-manager makes under this name."""
    return f"{service}-ingress-tls"


def make_tls_secret(name: str, namespace: str, cert_pem: Any, key_pem: Any, labels: Mapping[str, str]) -> dict[str, Any]:
    """The certificate and key the controller serves the host with (the controller reads only this Secret type)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": TLS_SECRET_TYPE,
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "stringData": {"tls.crt": cert_pem, "tls.key": key_pem}}


def make_ingress(name: str, namespace: str, host: str, service: str, settings: IngressSettings,
                 labels: Mapping[str, str]) -> dict[str, Any]:
    """`https://<host>/` to the seat's Service's Jupyter port, TLS with the seat's Secret (or cert-manager's)."""
    spec: dict[str, Any] = {
        "tls": [{"hosts": [host], "secretName": tls_secret_name(service)}],
        "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": service, "port": {"number": commands.JUPYTER_PORT}}}}]}}],
    }
    if settings.class_name:
        spec["ingressClassName"] = settings.class_name
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if settings.annotations:
        meta["annotations"] = dict(settings.annotations)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def ingress_urls(host: str, proxy: bool) -> dict[str, str]:
    """The outputs a user opens: the Ingress's address and, with the proxy, TensorBoard behind the login under it."""
    url = f"https://{host}/"
    return {"ingressUrl": url, **({"tensorboardProxyUrl": url + "tensorboard/"} if proxy else {})}


@dataclass
class SeatIngressArgs:
    settings: IngressSettings
    host: str
    service: str  # the seat's notebook Service (its name)
    namespace: pulumi.Input[str]
    namespace_name: str
    labels: Mapping[str, str]
    cert_pem: str
    key_pem: pulumi.Input[str] | None  # None with cert-manager, which makes the Secret


class SeatIngress(pulumi.ComponentResource):
    """One seat's way in from outside the cluster: its certificate Secret and its Ingress."""

    def __init__(self, name: str, args: SeatIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:SeatIngress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, "tfbox.role": INGRESS_ROLE}
        depends: list[pulumi.Resource] = []
        self.tls_secret: k8s.core.v1.Secret | None = None
        if not args.settings.cert_manager:
            if args.key_pem is None:
                raise ValueError("an Ingress certificate needs its key")
            # the engine drops a config value's final newline; a PEM file ends with one (as the certificate does)
            key = pulumi.Output.secret(args.key_pem).apply(lambda k: str(k).strip() + "\n")
            m = make_tls_secret(tls_secret_name(args.service), args.namespace_name, args.cert_pem, key, labels)
            self.tls_secret = k8s.core.v1.Secret(
                f"{name}-tls", metadata={**m["metadata"], "namespace": args.namespace}, type=m["type"],
                string_data=pulumi.Output.secret(m["stringData"]), opts=child)
            depends.append(self.tls_secret)
        m = make_ingress(args.service, args.namespace_name, args.host, args.service, args.settings, labels)
        # not awaited: without a controller (or before it publishes an address) the provider would wait 10 minutes
        meta = {**m["metadata"], "namespace": args.namespace,
                "annotations": {**m["metadata"].get("annotations", {}), "pulumi.com/skipAwait": "true"}}
        self.ingress = k8s.networking.v1.Ingress(
            name, metadata=meta, spec=m["spec"], opts=pulumi.ResourceOptions(parent=self, depends_on=depends))
        self.register_outputs({"host": args.host})
