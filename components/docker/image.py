"""Image: the TensorFlow notebook image pulled onto the Docker host.

Containers take the pulled image's id, not its tag: a tag or repo digest as a
container's `image` makes the provider replace the container on every `up`
(pulumi-docker#325). The provider never re-pulls a tag it already has, not even when
`pull_triggers` replace the RemoteImage, so a stack that tracks its registry pulls
`repo@<digest the registry serves now>`: a new digest is a new reference, really pulled.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.model.image_ref import parse_image_ref


@dataclass(frozen=True)
class ImageArgs:
    reference: str  # repo[:tag][@sha256:…], validated by components.model.image_ref
    keep_locally: bool  # a multi-GB image stays on the host at destroy unless config says otherwise
    track_registry: bool  # re-pull when the registry digest of the tag moves


class Image(pulumi.ComponentResource):
    image_id: pulumi.Output[str]
    repo_digest: pulumi.Output[str]

    def __init__(self, name: str, args: ImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Image", name, None, opts)
        pull: pulumi.Input[str] = args.reference
        if args.track_registry:
            repository = parse_image_ref(args.reference).repository
            registry = docker.get_registry_image_output(name=args.reference, opts=pulumi.InvokeOptions(parent=self))
            pull = registry.sha256_digest.apply(lambda digest: f"{repository}@{digest}")
        remote = docker.RemoteImage(
            name, name=pull, keep_locally=args.keep_locally, opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_id = remote.image_id
        self.repo_digest = remote.repo_digest
        self.register_outputs({"imageId": self.image_id, "repoDigest": self.repo_digest})
