"""`make doctor` takes each lab's roles and ports from the model (components.model.check), not its own YAML reading."""

from __future__ import annotations

from pathlib import Path

from ops import doctor as d


def test_roles_and_ports_follow_the_models_defaults_and_modes(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: tfbox\n")
    (tmp_path / "Pulumi.a.yaml").write_text("config:\n  docker:host: ssh://me@box:22\n  tfbox:tensorboardMode: 'off'\n")
    (tmp_path / "Pulumi.b.yaml").write_text("config:\n  docker:host: ssh://me@box\n  tfbox:tensorboardMode: exec\n"
                                            "  tfbox:notebookPort: 8890\n  tfbox:tensorboardPort: 6010\n")
    (tmp_path / "Pulumi.c.yaml").write_text("config:\n  docker:host: ssh://me@box\n  tfbox:gpus: many\n  tfbox:notebookPort: 8891\n")
    a, b, c = d.stack_refs(tmp_path)
    assert (a.name, a.expected_roles, a.ports, a.host.docker_host) == ("a", ("notebook",), (8888,), "ssh://me@box")
    assert (b.expected_roles, b.ports) == (("notebook",), (8890, 6010)), "exec: TensorBoard is in the notebook, on its port"
    assert (c.expected_roles, c.ports) == (("notebook", "tensorboard"), (8891, 6006)), "a file with problems is still looked at"
    assert [r.name for r in d.stack_refs(tmp_path, "b")] == ["b"]
