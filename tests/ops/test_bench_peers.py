"""bench/peers.py's definitions of the peers (Compose file, OpenTofu configuration, Ansible playbook):
each declares the same two containers as tfbox with the same ports, mounts, health checks, hardening
and Jupyter config, on the same network and volumes. The e2e smoke run (tests/e2e/test_bench_smoke.py)
runs them; this checks what they say without any tool."""

from __future__ import annotations

from pathlib import Path

from bench.peers import NETWORK, ContainerSpec, Spec, _ns, ansible_playbook, compose_file, tofu_config, with_tb_port

HC = {"test": ["CMD", "bash", "-c", 'read -r _ code _ && [ "$code" = 200 ]'], "interval": "30s", "timeout": "5s", "start_period": "2m0s", "retries": 3}
CONFIG = "/etc/jupyter/jupyter_server_config.json"


def spec() -> Spec:
    nb = ContainerSpec(
        role="notebook", command=["bash", "-c", "exec jupyter notebook"], env=["TF_CPP_MIN_LOG_LEVEL=1"],
        ports=[("127.0.0.1", 18888, 8888)],
        mounts=[{"type": "volume", "source": "peer-notebooks", "target": "/tf", "read_only": False},
                {"type": "volume", "source": "peer-logs", "target": "/tf/logs", "read_only": False}],
        healthcheck=HC, restart="always", stop_timeout=30, labels={"peer.role": "notebook"},
        cap_drop=["NET_RAW"], security_opt=["no-new-privileges"], memory=2 * 1024**3, memory_swap=-1,
        ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}], files={CONFIG: '{"hashed": "argon2:..."}\n'},
    )
    tb = ContainerSpec(
        role="tensorboard", command=["tensorboard", "--logdir=/tf/logs"], env=[], ports=[("127.0.0.1", 16006, 6006)],
        mounts=[{"type": "volume", "source": "peer-logs", "target": "/tf/logs", "read_only": True}],
        healthcheck=HC, restart="always", stop_timeout=10, labels={"peer.role": "tensorboard"},
        user="1000:1000", read_only=True, tmpfs={"/tmp": "size=64m"}, cap_drop=["ALL"],
    )
    return Spec(image="registry/tf:jupyter", notebook=nb, tensorboard=tb,
                volume_labels={"peer-notebooks": {"peer.role": "notebooks"}, "peer-logs": {"peer.role": "logs"}},
                network_labels={"peer.role": "network"}, nb_port=18888, tb_port=16006)


def test_compose_file_declares_the_same_containers(tmp_path: Path) -> None:
    c = compose_file(spec(), tmp_path)
    nb, tb = c["services"]["notebook"], c["services"]["tensorboard"]
    assert nb["container_name"] == "peer-notebook" and nb["ports"] == ["127.0.0.1:18888:8888"]
    # compose interpolates `$code`: the probe's shell variable must reach bash as it is, `$$` in the file
    assert nb["healthcheck"] == {**HC, "test": ["CMD", "bash", "-c", 'read -r _ code _ && [ "$$code" = 200 ]']}
    assert nb["restart"] == "always" and nb["stop_grace_period"] == "30s"
    assert nb["mem_limit"] == 2 * 1024**3 and nb["memswap_limit"] == -1 and nb["ulimits"] == {"nofile": {"soft": 1024, "hard": 2048}}
    # the Jupyter config (the password hash) as a read-only file, not an environment variable
    assert {"type": "bind", "source": str(tmp_path / "jupyter_server_config.json"), "target": CONFIG, "read_only": True} in nb["volumes"]
    assert not any("hashed" in e for e in nb["environment"])
    assert tb["user"] == "1000:1000" and tb["read_only"] and tb["tmpfs"] == ["/tmp:size=64m"] and tb["cap_drop"] == ["ALL"]
    assert {"type": "volume", "source": "logs", "target": "/tf/logs", "read_only": True} in tb["volumes"]  # the key below
    assert c["networks"]["net"]["name"] == NETWORK and set(c["volumes"]) == {"notebooks", "logs"}


def test_tofu_config_declares_the_same_containers() -> None:
    t = tofu_config(spec(), "unix:///run/d.sock")
    assert t["provider"]["docker"]["host"] == "unix:///run/d.sock"
    nb = t["resource"]["docker_container"]["notebook"]
    assert nb["upload"] == [{"file": CONFIG, "content": '{"hashed": "argon2:..."}\n'}]
    assert nb["ports"] == [{"internal": 8888, "external": 18888, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert nb["memory"] == 2048 and nb["memory_swap"] == -1 and nb["must_run"] and nb["destroy_grace_seconds"] == 30
    assert nb["network_mode"] == "${docker_network.net.name}" and nb["image"] == "${docker_image.image.image_id}"
    assert {m["source"] for m in nb["mounts"]} == {"${docker_volume.notebooks.name}", "${docker_volume.logs.name}"}
    tb = t["resource"]["docker_container"]["tensorboard"]
    assert tb["capabilities"] == [{"drop": ["ALL"]}] and tb["read_only"] and tb["healthcheck"] == [HC]


def test_ansible_playbook_declares_the_same_containers(tmp_path: Path) -> None:
    [play] = ansible_playbook(spec(), "unix:///run/d.sock", tmp_path)
    assert play["module_defaults"]["group/community.docker.docker"]["docker_host"] == "unix:///run/d.sock"
    mods = [next(iter(v for k, v in task.items() if k.startswith("community.docker."))) for task in play["tasks"]]
    containers = {m["name"]: m for m in mods if "published_ports" in m}
    nb, tb = containers["peer-notebook"], containers["peer-tensorboard"]
    assert nb["published_ports"] == ["127.0.0.1:18888:8888"] and nb["network_mode"] == NETWORK and nb["state"] == "started"
    assert nb["ulimits"] == ["nofile:1024:2048"] and nb["env"] == {"TF_CPP_MIN_LOG_LEVEL": "1"}
    assert tb["cap_drop"] == ["ALL"] and tb["user"] == "1000:1000" and tb["tmpfs"] == ["/tmp:size=64m"]


def test_the_tensorboard_change_moves_only_its_port() -> None:
    s = spec()
    changed = with_tb_port(s, 17007)
    assert changed.tensorboard.ports == [("127.0.0.1", 17007, 6006)] and changed.tb_port == 17007
    assert changed.notebook == s.notebook and s.tensorboard.ports == [("127.0.0.1", 16006, 6006)]


def test_durations_are_written_as_the_provider_reads_them_back() -> None:
    # "120s" would be planned as a change to "2m0s" by OpenTofu on every apply (seen before this was fixed)
    assert [_ns(int(s * 1e9)) for s in (5, 30, 120, 90, 3600, 0.5)] == ["5s", "30s", "2m0s", "1m30s", "1h0m0s", "0.5s"]
