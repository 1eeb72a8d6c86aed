"""The tfbox policies wired into pulumi-policy; `__main__.py` serves them, the unit tests drive them in-process.

The checks themselves live in `policy/rules.py` as plain functions of resource inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import PolicyResource

from policy import k8s_rules, rules

PACK_NAME = "tfbox"

Check = Callable[[str, Mapping[str, Any]], list[str]]


def _resource_policy(name: str, description: str, check: Check) -> ResourceValidationPolicy:
    """One mandatory policy per rule, so a violation names the rule that caught it."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY)


def _validate_volume(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for message in rules.check_notebooks_volume_kept(args.resource_type, args.props, bool(args.opts.protect)):
        report_violation(message, None)


def _image_sources(resource: PolicyResource, everything: list[PolicyResource]) -> list[str]:
    """RemoteImage names feeding the container's `image`, directly or through a component (e.g. tfbox:index:Image)."""
    feeding = resource.property_dependencies.get("image", [])
    urns = {dep.urn for dep in feeding}
    candidates = [(r.resource_type, r.props) for r in everything if r.urn in urns or (r.parent is not None and r.parent.urn in urns)]
    return rules.image_names(candidates)


def _validate_gpu_images(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for resource in args.resources:
        sources = _image_sources(resource, args.resources)
        for message in rules.check_gpu_image_pinned(resource.resource_type, resource.props, sources):
            report_violation(message, resource.urn)


def _validate_exposed_services(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = args.resources
    for index, message in k8s_rules.check_exposed_services((r.resource_type, r.props) for r in resources):
        report_violation(message, resources[index].urn)


def build_policies() -> list[Policy]:
    """Mandatory guard rails plus one advisory; the names are what a violation message starts with."""
    return [
        _resource_policy(
            "notebook-requires-password",
            "A notebook container must log in by password (a Jupyter config upload with a hashed password).",
            rules.check_notebook_password,
        ),
        _resource_policy(
            "public-notebook-requires-password",
            "A notebook published beyond localhost must have a password.",
            rules.check_public_notebook_password,
        ),
        _resource_policy(
            "public-notebook-requires-tls",
            "A notebook published beyond localhost must serve HTTPS, unless the stack sets tfbox:allowPlainHttpOnLan.",
            rules.check_public_notebook_tls,
        ),
        _resource_policy(
            "tensorboard-loopback-unless-public",
            "TensorBoard has no login: publish it beyond loopback only when the stack sets tfbox:tensorboardPublic.",
            rules.check_tensorboard_loopback,
        ),
        _resource_policy(
            "containers-hardened",
            "Every tfbox container runs with no-new-privileges; TensorBoard as non-root, read-only, without capabilities.",
            rules.check_container_hardening,
        ),
        ResourceValidationPolicy(
            name="notebooks-volume-survives-destroy",
            description="The notebooks volume must be retained (retainOnDelete, seen as a label) or protected.",
            validate=_validate_volume,
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
        _resource_policy(
            "k8s-no-host-access",
            "A Kubernetes pod shares no node namespace (hostNetwork, hostPID, hostIPC) and mounts no hostPath.",
            k8s_rules.check_no_host_access,
        ),
        _resource_policy(
            "k8s-no-privilege",
            "No privileged Kubernetes container; every container sets allowPrivilegeEscalation: false.",
            k8s_rules.check_no_privilege,
        ),
        _resource_policy(
            "k8s-secrets-in-secrets",
            "Password hashes and private keys live in a Secret, never in a ConfigMap or a plain env value.",
            k8s_rules.check_secrets_in_secrets,
        ),
        _resource_policy(
            "k8s-ingress-requires-tls",
            "An Ingress serves every host it routes over TLS and never routes to TensorBoard.",
            k8s_rules.check_ingress_tls,
        ),
        StackValidationPolicy(
            name="k8s-exposed-notebook-requires-tls",
            description="A Service reaching beyond the cluster (NodePort, LoadBalancer, external IPs) exposes only a "
                        "notebook serving HTTPS with its key from a Secret, never TensorBoard.",
            validate=_validate_exposed_services,
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
        StackValidationPolicy(
            name="gpu-image-pinned-by-digest",
            description="On a GPU machine, pin the image by digest so a pull cannot change the CUDA/TensorFlow build.",
            validate=_validate_gpu_images,
            enforcement_level=EnforcementLevel.ADVISORY,
        ),
    ]
