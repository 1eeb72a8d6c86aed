"""Docker image references: `[registry/]repo[:tag][@sha256:digest]`, checked before any pull."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Docker's reference grammar, reduced to what a user writes in a stack file.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_REF_RE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class ImageRefError(ValueError):
    """An image reference Docker would refuse."""


@dataclass(frozen=True)
class ImageRef:
    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def pinned(self) -> bool:
        """True when the reference names content, not a moving tag."""
        return self.digest is not None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def cpu_only(self) -> bool:
        """A TensorFlow tag without CUDA: GPUs requested with it would sit idle."""
        return self.path.endswith("tensorflow/tensorflow") and self.tag is not None and "gpu" not in self.tag

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_image_ref(text: str) -> ImageRef:
    ref = text.strip()
    m = _REF_RE.match(ref)
    if not ref or not m:
        raise ImageRefError(
            f"{text!r} is not an image reference; write repo[:tag] or repo@sha256:<64 hex digits>, "
            "for example tensorflow/tensorflow:latest-jupyter"
        )
    domain = m.group("domain")
    path = m.group("path")
    # "host:port/repo" and "localhost/repo" are domains; "tensorflow/tensorflow" is a path.
    if domain and not ("." in domain or ":" in domain or domain == "localhost"):
        if domain != domain.lower():
            # Docker would take `UPPER/case` as a registry named UPPER; the user meant a repository.
            raise ImageRefError(
                f"{text!r}: a repository path is lower case ({domain!r} has capitals); write "
                f"{domain.lower()}/{path}, or name a registry with its domain (registry.example.com/…)"
            )
        path, domain = f"{domain}/{path}", None
    return ImageRef(domain, path, m.group("tag"), m.group("digest"))
