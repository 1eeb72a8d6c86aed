"""The whole program under Pulumi's mocks: exactly what each stack asks Docker for."""

import json
from pathlib import Path

import pytest
from jupyter_server.auth.security import passwd_check

import components.kernel.capture
from components.model.commands import CAPTURE_STARTUP_PATH, JUPYTER_CONFIG_PATH, TLS_CERT_PATH, TLS_KEY_PATH
from components.model.tls import fingerprint_sha256
from tests.docker.program import TLS, Recorder, is_secret_value, run_program, stack_config, with_machine_secrets

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
IMAGE = "docker:index/remoteImage:RemoteImage"
NETWORK = "docker:index/network:Network"
IMAGE_ID = "sha256:" + "ab" * 32
PASSWORD = "correct horse battery staple"


def config_for(stack, **overrides):
    cfg = with_machine_secrets(stack_config(stack))
    cfg["tfbox:password"] = PASSWORD
    cfg.update({f"tfbox:{k}": v for k, v in overrides.items()})
    return cfg


def run(stack="dev", **overrides):
    return run_program(config_for(stack, **overrides), stack=stack)


def labels(inputs):
    return {item["label"]: item["value"] for item in inputs["labels"]}


def jupyter_settings(notebook):
    uploads = notebook.inputs["uploads"]
    assert is_secret_value(uploads), "the uploads carry the password hash and must stay secret"
    files = {u["file"]: u["content"] for u in uploads["value"]}
    return json.loads(files[JUPYTER_CONFIG_PATH]), files


def test_dev_stack_declares_exactly_these_resources():
    rec, _ = run()
    assert sorted((r.type, r.name) for r in rec.resources) == sorted([
        ("tfbox:index:Lab", "lab"), ("tfbox:index:Storage", "storage"), ("tfbox:index:Image", "image"),
        ("tfbox:index:Notebook", "notebook"), ("tfbox:index:TensorBoard", "tensorboard"),
        ("tfbox:index:Network", "network"), (NETWORK, "network"),
        (VOLUME, "notebooks"), (VOLUME, "logs"), (IMAGE, "image"), (CONTAINER, "notebook"), (CONTAINER, "tensorboard"),
        ("tfbox:index:Ready", "ready"), (CONTAINER, "ready"),
        ("tfbox:index:PidsLimit", "notebook-pids"), ("tfbox:index:PidsLimit", "tensorboard-pids"),
    ])
    # Pulumi's component style: every resource below the Lab, children with parent=self
    assert rec.parents[f"{CONTAINER}::notebook"] == "notebook"
    assert rec.parents[f"{VOLUME}::notebooks"] == "storage"
    assert rec.parents["tfbox:index:Notebook::notebook"] == "lab"


def test_dev_image_is_the_cpu_notebook_image_kept_on_destroy():
    rec, _ = run()
    image = rec.one(IMAGE, "image").inputs
    assert image == {"name": "tensorflow/tensorflow:latest-jupyter", "keepLocally": True}


def test_dev_notebook_container_inputs():
    rec, _ = run()
    nb = rec.one(CONTAINER, "notebook").inputs
    assert nb["name"] == "tfbox-dev-notebook"
    assert nb["image"] == IMAGE_ID, "the image id, not the tag: a tag replaces the container on every up"
    assert nb["ports"] == [{"internal": 8888, "external": 8888, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert nb["mounts"] == [
        {"target": "/tf", "type": "volume", "source": "tfbox-dev-notebooks"},
        {"target": "/tf/logs", "type": "volume", "source": "tfbox-dev-logs"},
    ]
    assert nb["restart"] == "always"
    # `up` waits on the ready container, not on the health check (polled once a second by the provider)
    assert "wait" not in nb and nb["mustRun"] is True
    assert nb["destroyGraceSeconds"] == 30
    assert nb["healthcheck"]["tests"][:3] == ["CMD", "bash", "-c"]
    assert "/dev/tcp/127.0.0.1/8888" in nb["healthcheck"]["tests"][3] and "GET /api " in nb["healthcheck"]["tests"][3]
    assert "gpus" not in nb and "deviceRequests" not in nb and "runtime" not in nb
    assert nb["envs"] == ["TF_CPP_MIN_LOG_LEVEL=2", "NVIDIA_VISIBLE_DEVICES=void"], \
        "TensorFlow's import-time C++ info/warnings are quiet by default; no GPUs even under a default nvidia runtime"
    assert labels(nb) == {"tfbox.project": "tfbox", "tfbox.stack": "dev", "tfbox.role": "notebook"}
    assert "jupyter notebook --notebook-dir=/tf" in nb["command"][2]
    assert rec.opts(CONTAINER, "notebook").delete_before_replace is True


def test_dev_notebook_is_hardened_and_sized_for_tensorflow():
    rec, _ = run()
    nb = rec.one(CONTAINER, "notebook").inputs
    assert nb["securityOpts"] == ["no-new-privileges"]
    assert nb["init"] is True, "an init process reaps the zombies kernels leave"
    assert sorted(nb["capabilities"]["drops"]) == ["CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SYS_CHROOT"]
    assert "user" not in nb and "readOnly" not in nb  # root in /tf: see docs/security.md, Hardening
    assert nb["logDriver"] == "json-file" and nb["logOpts"] == {"max-size": "10m", "max-file": "3"}
    assert nb["shmSize"] == 1024, "1 GiB, in the MiB the provider reads back"
    assert "ulimits" not in nb, "NVIDIA's ulimits are for GPU stacks"
    assert "memory" not in nb and "memorySwap" not in nb and "cpus" not in nb


def test_memory_and_cpu_limits_are_spelled_as_the_provider_reads_them_back():
    rec, _ = run(notebookMemory="16g", notebookCpus="2", shmSize="2g", notebookUlimits="nofile=4096:8192")
    nb = rec.one(CONTAINER, "notebook").inputs
    assert (nb["memory"], nb["memorySwap"], nb["shmSize"]) == (16384, -1, 2048)
    assert nb["cpus"] == "2.0"
    assert nb["ulimits"] == [{"name": "nofile", "soft": 4096, "hard": 8192}]


def test_password_reaches_jupyter_only_as_a_salted_hash():
    rec, _ = run()
    nb = rec.one(CONTAINER, "notebook").inputs
    settings, files = jupyter_settings(rec.one(CONTAINER, "notebook"))
    hashed = settings["PasswordIdentityProvider"]["hashed_password"]
    assert passwd_check(hashed, PASSWORD) and PASSWORD not in hashed
    assert hashed.startswith("argon2:$argon2id$v=19$m=10240,t=10,p=8$")
    assert settings["IdentityProvider"]["token"] == ""
    assert files[CAPTURE_STARTUP_PATH] == Path(components.kernel.capture.__file__).read_text(), "the capture() startup file"
    # the recipe's PASSWORD env var is ignored by current images and visible in docker inspect
    assert not any("PASSWORD" in e for e in nb.get("envs", []))


def plaintext_inputs(rec):
    """Every input a resource gets, with secret values left out (they are encrypted in state)."""
    def strip(value):
        if is_secret_value(value):
            return "<secret>"
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return json.dumps([strip(r.inputs) for r in rec.resources])


@pytest.mark.parametrize("stack", ["dev", "gpu-box"])
def test_secrets_stay_secret(stack):
    rec, _ = run(stack)
    text = plaintext_inputs(rec)
    assert PASSWORD not in text and "sha256:" + "0" not in text
    assert "hashed_password" not in text
    assert rec.output_secret["password"] is True
    assert not any(v for k, v in rec.output_secret.items() if k != "password")


def test_volumes_survive_destroy_and_replacement():
    rec, _ = run()
    for name in ("notebooks", "logs"):
        vol = rec.one(VOLUME, name)
        assert vol.inputs["name"] == f"tfbox-dev-{name}"
        assert labels(vol.inputs)["tfbox.role"] == name
        assert labels(vol.inputs)["tfbox.retain-on-delete"] == "true", "the policy pack reads retainOnDelete from this label"
        assert rec.opts(VOLUME, name).retain_on_delete is True
        assert not rec.opts(VOLUME, name).protect


def test_volume_options_follow_config():
    rec, _ = run(keepVolumes=False, protectVolumes=True)
    assert rec.opts(VOLUME, "notebooks").retain_on_delete is False
    assert rec.opts(VOLUME, "notebooks").protect is True


def test_host_path_replaces_the_notebooks_volume():
    rec, _ = run(notebooksHostPath="/srv/tfbox/notebooks")
    assert [r.name for r in rec.by_type(VOLUME)] == ["logs"]
    assert rec.one(CONTAINER, "notebook").inputs["mounts"][0] == {"target": "/tf", "type": "bind", "source": "/srv/tfbox/notebooks"}


def test_tensorboard_sidecar_inputs():
    rec, _ = run()
    tb = rec.one(CONTAINER, "tensorboard").inputs
    assert tb["image"] == IMAGE_ID
    assert tb["command"] == ["tensorboard", "--logdir=/tf/logs", "--bind_all", "--port=6006"]
    assert tb["mounts"] == [{"target": "/tf/logs", "type": "volume", "source": "tfbox-dev-logs", "readOnly": True}]
    assert tb["ports"] == [{"internal": 6006, "external": 6006, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert tb["restart"] == "always" and "wait" not in tb
    assert "/data/logdir" in tb["healthcheck"]["tests"][3]
    assert labels(tb)["tfbox.tensorboard-public"] == "false"
    assert rec.opts(CONTAINER, "tensorboard").delete_before_replace is True
    assert not rec.opts(CONTAINER, "tensorboard").depends_on
    # unprivileged, read-only, no capabilities: it only serves the logs
    assert tb["user"] == "65534:65534" and tb["readOnly"] is True
    assert tb["tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m"}
    assert tb["capabilities"] == {"drops": ["ALL"]} and tb["securityOpts"] == ["no-new-privileges"]
    assert "shmSize" not in tb and "init" not in tb


def test_running_twice_gives_identical_inputs():
    first, out1 = run("gpu-box")
    second, out2 = run("gpu-box")
    # registration order is asynchronous; what matters is each resource's inputs
    assert {(r.type, r.name): r.inputs for r in first.resources} == {(r.type, r.name): r.inputs for r in second.resources}
    assert len(first.resources) == len(second.resources) == 18
    assert out1 == out2


@pytest.mark.parametrize("change", [{"tensorboardPort": 6007}, {"tensorboardMode": "off"},
                                    {"tensorboardBind": "0.0.0.0", "tensorboardPublic": True}])
def test_tensorboard_only_change_leaves_the_notebook_alone(change):
    base, _ = run()
    changed, _ = run(**change)
    assert changed.one(CONTAINER, "notebook").inputs == base.one(CONTAINER, "notebook").inputs


def test_exec_mode_runs_tensorboard_inside_the_notebook():
    rec, outputs = run(tensorboardMode="exec")
    assert not [r for r in rec.by_type(CONTAINER) if r.name == "tensorboard"]
    nb = rec.one(CONTAINER, "notebook").inputs
    assert {"internal": 6006, "external": 6006, "ip": "127.0.0.1", "protocol": "tcp"} in nb["ports"]
    assert "tensorboard --logdir=/tf/logs --bind_all --port=6006" in nb["command"][2]
    assert "6006" in nb["healthcheck"]["tests"][3]
    assert outputs["tensorboardUrl"] == "http://127.0.0.1:6006/"


def test_tensorboard_off():
    rec, outputs = run(tensorboardMode="off")
    assert [r.name for r in rec.by_type(CONTAINER)] == ["notebook", "ready"]
    assert "6006" not in rec.one(CONTAINER, "ready").inputs["command"][2]
    assert outputs["tensorboardUrl"] is None


def test_gpu_box_stack():
    rec, outputs = run("gpu-box")
    nb = rec.one(CONTAINER, "notebook").inputs
    assert nb["deviceRequests"] == [{"driver": "nvidia", "count": 0, "deviceIds": ["0", "1"], "capabilities": ["gpu"]}]
    assert "gpus" not in nb  # the CSV string form loses its quotes in the provider
    assert nb["ports"][0]["ip"] == "0.0.0.0"
    assert rec.one(IMAGE, "image").inputs["name"] == "tensorflow/tensorflow:latest-gpu-jupyter"
    check = rec.one(CONTAINER, "gpu-check").inputs
    assert check["deviceRequests"] == nb["deviceRequests"] and check["image"] == nb["image"]
    assert check["command"][:2] == ["sh", "-c"] and check["command"][2].startswith("nvidia-smi -L || exit $?")
    # NVIDIA's hook would refuse to start the check for an image needing a newer CUDA: the check says why instead
    assert check["envs"] == ["NVIDIA_DISABLE_REQUIRE=true"] and "NVIDIA_DISABLE_REQUIRE=true" not in nb["envs"]
    # the notebook's health check also checks its two GPUs, and runs often enough to notice their loss within 30 s
    assert "nvidia-smi -L" in nb["healthcheck"]["tests"][3] and "-eq 2" in nb["healthcheck"]["tests"][3]
    assert (nb["healthcheck"]["interval"], nb["healthcheck"]["retries"]) == ("15s", 2)
    # idle kernels are culled after an hour on GPU stacks
    assert jupyter_settings(rec.one(CONTAINER, "notebook"))[0]["MappingKernelManager"]["cull_idle_timeout"] == 3600
    assert check["mustRun"] is False and check["attach"] is True and check["logs"] is True
    assert check["securityOpts"] == ["no-new-privileges"]
    assert nb["ulimits"] == [{"name": "memlock", "soft": -1, "hard": -1}, {"name": "stack", "soft": 67108864, "hard": 67108864}]
    assert labels(nb)["tfbox.gpu-check"] == "passed"
    assert outputs["gpus"] == "0,1"
    assert outputs["gpuCheck"].startswith("GPU 0: NVIDIA H200")
    assert outputs["notebookUrl"] == "https://gpu-box:8888/"
    assert outputs["notebookCertSha256"] == fingerprint_sha256(TLS.cert_pem)
    assert outputs["tensorboardUrl"] == "http://127.0.0.1:6006/"
    assert outputs["containerNames"] == ["tfbox-gpu-box-notebook", "tfbox-gpu-box-tensorboard", "tfbox-gpu-box-gpu-check",
                                          "tfbox-gpu-box-ready"]


def test_legacy_nvidia_runtime_mode():
    rec, _ = run("gpu-box", gpuMode="nvidia-runtime")
    for name in ("notebook", "gpu-check"):
        inputs = rec.one(CONTAINER, name).inputs
        assert inputs["runtime"] == "nvidia" and "gpus" not in inputs and "deviceRequests" not in inputs
        assert "NVIDIA_VISIBLE_DEVICES=0,1" in inputs["envs"]


def test_failed_gpu_check_stops_the_notebook():
    rec = Recorder()
    rec.gpu_check_result = (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    with pytest.raises(Exception, match="NVIDIA Container Toolkit"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)


def test_cpu_stack_has_no_gpu_probe_and_no_culling():
    rec, _ = run()
    nb = rec.one(CONTAINER, "notebook").inputs
    assert "nvidia-smi" not in nb["healthcheck"]["tests"][3]
    assert (nb["healthcheck"]["interval"], nb["healthcheck"]["retries"]) == ("30s", 3)
    assert "MappingKernelManager" not in jupyter_settings(rec.one(CONTAINER, "notebook"))[0]


def test_an_image_needing_a_newer_cuda_stops_the_notebook():
    rec = Recorder()
    rec.gpu_check_result = (0, "GPU 0: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6860)\n"
                               "GPU 1: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6861)\n"
                               "| NVIDIA-SMI 535.183.01   Driver Version: 535.183.01   CUDA Version: 12.2     |\n"
                               "image CUDA_VERSION=12.8.1\nimage NVIDIA_REQUIRE_CUDA=cuda>=12.8\n")
    with pytest.raises(Exception, match=r"needs CUDA 12\.8 or newer.*535\.183\.01 supports CUDA 12\.2 at most"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)
    assert not [r for r in rec.by_type(CONTAINER) if r.name == "notebook"]


def test_too_few_gpus_seen_fails_the_check():
    rec = Recorder()
    rec.gpu_check_result = (0, "GPU 0: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6860)\n")
    with pytest.raises(Exception, match="sees 1"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)


def test_tracking_the_registry_pulls_the_digest_it_serves():
    # a tag the host already has is never pulled again, so an upgrade must name the new digest
    rec, _ = run(imageTrackRegistry=True)
    assert rec.calls[0] == ("docker:index/getRegistryImage:getRegistryImage", {"name": "tensorflow/tensorflow:latest-jupyter"})
    assert rec.one(IMAGE, "image").inputs == {"name": "tensorflow/tensorflow@sha256:" + "ef" * 32, "keepLocally": True}


def test_bad_config_declares_nothing():
    rec = Recorder()
    with pytest.raises(Exception, match=r"tfbox:gpus.*Fix"):
        run_program(config_for("dev", gpus="zero"), recorder=rec)
    assert rec.resources == []


def test_plaintext_password_is_refused():
    rec = Recorder()
    with pytest.raises(Exception, match="plaintext"):
        run_program(config_for("dev"), secret_keys=(), recorder=rec)
    assert rec.resources == []


@pytest.mark.parametrize("name", ["notebook", "tensorboard"])
def test_health_check_durations_are_spelled_as_docker_reads_them_back(name):
    # The provider reads durations back in Go's spelling ("2m0s"); "120s" would be a perpetual diff.
    rec, _ = run()
    hc = rec.one(CONTAINER, name).inputs["healthcheck"]
    assert (hc["interval"], hc["timeout"], hc["startPeriod"]) == ("30s", "5s", "2m0s")


def test_ready_container_waits_for_both_and_reruns_when_either_is_new():
    rec, _ = run()
    ready = rec.one(CONTAINER, "ready").inputs
    assert ready["name"] == "tfbox-dev-ready" and ready["image"] == IMAGE_ID
    assert ready["networkMode"] == "container:notebook-id", "it checks the notebook from inside its network namespace"
    assert ready["envs"] == ["TFBOX_WAITS_FOR=notebook-id,tensorboard-id", "NVIDIA_VISIBLE_DEVICES=void"], \
        "a new notebook or TensorBoard container replaces it"
    assert ready["attach"] is True and ready["mustRun"] is False and ready["restart"] == "no"
    script = ready["command"][2]
    # TensorBoard by its name on the stack network (Docker's DNS), never by an address a daemon restart changes
    assert "/dev/tcp/127.0.0.1/8888" in script and "/dev/tcp/tfbox-dev-tensorboard/6006" in script
    assert "10.213.0." not in script
    assert labels(ready)["tfbox.role"] == "ready"
    tb = rec.one(CONTAINER, "tensorboard").inputs
    hardening = ("securityOpts", "user", "readOnly", "capabilities", "tmpfs")
    assert {k: ready[k] for k in hardening} == {k: tb[k] for k in hardening}, "hardened like TensorBoard"
    assert rec.opts(CONTAINER, "ready").delete_before_replace is True


def test_exec_mode_ready_checks_tensorboard_inside_the_notebook():
    rec, _ = run(tensorboardMode="exec")
    ready = rec.one(CONTAINER, "ready").inputs
    assert "/dev/tcp/127.0.0.1/6006" in ready["command"][2]
    assert ready["envs"] == ["TFBOX_WAITS_FOR=notebook-id", "NVIDIA_VISIBLE_DEVICES=void"]


def test_a_lab_that_never_answers_fails_the_up():
    rec = Recorder()
    rec.ready_result = (1, "the notebook did not answer within 300 s\n")
    with pytest.raises(Exception, match=r"the notebook did not answer within 300 s.*docker logs.*--replace"):
        run_program(config_for("dev"), stack="dev", recorder=rec)


def test_failed_gpu_check_says_how_to_reproduce_it_by_hand():
    from components.docker.gpu_check import GpuCheckFailed, verdict
    from components.model.gpus import parse_gpus

    with pytest.raises(GpuCheckFailed, match=r"""docker run --rm --gpus '"device=0,1"' <image> nvidia-smi -L"""):
        verdict(parse_gpus("0,1"), "device-requests", 9, "")
    with pytest.raises(GpuCheckFailed, match="--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=0,1"):
        verdict(parse_gpus("0,1"), "nvidia-runtime", 9, "")


def test_localhost_binds_reach_docker_as_127_0_0_1():
    """Docker turns a host IP it cannot parse (`localhost`) into 0.0.0.0: the program hands it the IP."""
    rec, _ = run(notebookBind="localhost", tensorboardBind="LOCALHOST")
    for name in ("notebook", "tensorboard"):
        ports = rec.one(CONTAINER, name).inputs["ports"]
        assert [p["ip"] for p in ports] == ["127.0.0.1"], name


def test_tf_log_level_reaches_the_notebook_env():
    rec, _ = run(tfLogLevel="0")
    assert "TF_CPP_MIN_LOG_LEVEL=0" in rec.one(CONTAINER, "notebook").inputs["envs"]


def test_gpu_box_serves_https_with_the_uploaded_pair():
    rec, outputs = run("gpu-box")
    nb = rec.one(CONTAINER, "notebook")
    settings, files = jupyter_settings(nb)
    assert settings["ServerApp"]["certfile"] == TLS_CERT_PATH and settings["ServerApp"]["keyfile"] == TLS_KEY_PATH
    assert files[TLS_CERT_PATH] == TLS.cert_pem and files[TLS_KEY_PATH] == TLS.key_pem
    # bash cannot speak TLS: the probe and the ready check see that the TLS port accepts connections
    assert nb.inputs["healthcheck"]["tests"][3].endswith("} && exec 3<>/dev/tcp/127.0.0.1/8888 && exec 3>&-")  # after the GPUs
    assert "GET /api" not in rec.one(CONTAINER, "ready").inputs["command"][2].split("6006")[0]
    text = plaintext_inputs(rec)
    assert TLS.key_pem.splitlines()[1] not in text, "the key travels only inside the secret uploads"
    assert rec.output_secret["notebookCertSha256"] is False and outputs["notebookCertSha256"].count(":") == 31


def test_gpu_box_without_a_certificate_is_refused_with_the_command():
    cfg = config_for("gpu-box")
    del cfg["tfbox:tlsCert"], cfg["tfbox:tlsKey"]
    rec = Recorder()
    with pytest.raises(Exception, match=r"tfbox:notebookBind: 0\.0\.0\.0 publishes the notebook .*make tls STACK=gpu-box"):
        run_program(cfg, stack="gpu-box", recorder=rec)
    assert rec.resources == []


def test_short_password_is_refused_and_not_printed():
    rec = Recorder()
    with pytest.raises(Exception, match="tfbox:password: is shorter than 12") as info:
        run_program(config_for("dev", password="short-pw"), recorder=rec)
    assert "short-pw" not in str(info.value) and rec.resources == []


def test_dev_stack_stays_plain_http_on_loopback():
    rec, outputs = run()
    assert outputs["notebookUrl"] == "http://127.0.0.1:8888/"
    settings, files = jupyter_settings(rec.one(CONTAINER, "notebook"))
    assert "certfile" not in settings["ServerApp"] and TLS_KEY_PATH not in files
def test_each_stack_gets_its_own_network_and_its_containers_only_that():
    rec, _ = run("gpu-box")
    net = rec.one(NETWORK, "network").inputs
    assert net["name"] == "tfbox-gpu-box-net" and net["driver"] == "bridge"
    assert labels(net) == {"tfbox.project": "tfbox", "tfbox.stack": "gpu-box", "tfbox.role": "network"}
    assert rec.parents[f"{NETWORK}::network"] == "network" and rec.parents["tfbox:index:Network::network"] == "lab"
    for name in ("notebook", "tensorboard"):
        c = rec.one(CONTAINER, name).inputs
        assert c["networkMode"] == "tfbox-gpu-box-net", f"{name} must be on the stack's network, not the default bridge"
        assert "networksAdvanced" not in c
    assert rec.one(CONTAINER, "gpu-check").inputs["networkMode"] == "none"


def test_ssh_host_is_checked_once_strictly_before_anything_is_declared():
    rec, _ = run("gpu-box")
    assert len(rec.ssh_probes) == 1
    cmd = rec.ssh_probes[0]
    assert cmd[:7] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=8"]
    assert cmd[-8:] == ["-l", "tfbox", "--", "gpu-box", "docker", "version", "--format", "{{.Server.Version}}"]
    dev, _ = run()
    assert dev.ssh_probes == [], "a local socket needs no ssh"


def test_ssh_problem_stops_the_program_with_one_line():
    rec = Recorder()
    rec.ssh_probe_result = (255, "No ED25519 host key is known for gpu-box and you have requested strict checking.\r\n"
                                 "Host key verification failed.\r\n")
    with pytest.raises(Exception, match="host key is not in known_hosts"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)
    assert [r for r in rec.resources if r.type.startswith("docker:")] == []


def test_unsafe_ssh_opts_stop_the_program_before_ssh_or_any_resource_runs():
    """The preflight, the live ledger and the provider all run ssh with docker:sshOpts: none may start."""
    rec = Recorder()
    cfg = config_for("gpu-box")
    cfg["docker:sshOpts"] = json.dumps(["-o", "ProxyCommand=touch /tmp/tfbox-pwned"])
    with pytest.raises(Exception, match="docker:sshOpts: the ssh option 'ProxyCommand'"):
        run_program(cfg, stack="gpu-box", recorder=rec)
    assert rec.ssh_probes == [] and rec.host_commands == []
    assert [r for r in rec.resources if r.type.startswith("docker:")] == []


def test_jupyter_allows_remote_hosts_only_when_published_beyond_loopback():
    """On loopback, Jupyter's DNS-rebinding guard (allow_remote_access False) answers only Host 127.0.0.1/localhost."""
    dev, _ = run()
    assert jupyter_settings(dev.one(CONTAINER, "notebook"))[0]["ServerApp"]["allow_remote_access"] is False
    box, _ = run("gpu-box")  # 0.0.0.0 with TLS: reached by the box's name
    assert jupyter_settings(box.one(CONTAINER, "notebook"))[0]["ServerApp"]["allow_remote_access"] is True


def test_containers_without_gpus_say_void_so_a_default_nvidia_runtime_gives_them_none():
    """NVIDIA's CUDA images set NVIDIA_VISIBLE_DEVICES=all; a daemon whose default runtime is nvidia would honour it."""
    dev, _ = run()
    for name in ("notebook", "tensorboard", "ready"):
        assert "NVIDIA_VISIBLE_DEVICES=void" in dev.one(CONTAINER, name).inputs["envs"], name
    for mode in ("device-requests", "nvidia-runtime"):
        gpu, _ = run("dev", gpus="0", gpuMode=mode, image="tensorflow/tensorflow:2.17.0-gpu-jupyter")
        nb = gpu.one(CONTAINER, "notebook").inputs
        assert "NVIDIA_VISIBLE_DEVICES=void" not in nb["envs"], mode
        assert "NVIDIA_VISIBLE_DEVICES=void" in gpu.one(CONTAINER, "tensorboard").inputs["envs"]


def test_notebook_and_tensorboard_get_a_pids_limit_through_docker_update():
    """The docker provider has no pids input: components.docker.pids sets it on the container once it exists, and a
    second run changes no resource input (the limit is no input of the provider's)."""
    rec, _ = run()
    updates = sorted(c[-1] for c in rec.host_commands if "--pids-limit" in c[-1])
    assert updates == [
        "[ \"$(docker inspect -f '{{.HostConfig.PidsLimit}}' notebook-id)\" = 4096 ] || docker update --pids-limit 4096 notebook-id >/dev/null",
        "[ \"$(docker inspect -f '{{.HostConfig.PidsLimit}}' tensorboard-id)\" = 1024 ] || docker update --pids-limit 1024 tensorboard-id >/dev/null",
    ]
    assert all(c[:2] == ["sh", "-c"] for c in rec.host_commands), "the local daemon: DOCKER_HOST, no ssh"
    raised, _ = run(notebookPidsLimit="100000")
    assert any("--pids-limit 100000 notebook-id" in c[-1] for c in raised.host_commands)
    off, _ = run(notebookPidsLimit="0")
    assert not any("--pids-limit" in c[-1] for c in off.host_commands), "0: no pids limits, TensorBoard's neither"
    assert ("tfbox:index:PidsLimit", "notebook-pids") not in {(r.type, r.name) for r in off.resources}


def test_a_pids_limit_docker_refuses_stops_up_with_the_fix():
    rec = Recorder()
    rec.pids_result = (1, "", "Error response from daemon: unknown flag: --pids-limit")
    with pytest.raises(Exception, match=r"could not limit tfbox-dev-(notebook to 4096|tensorboard to 1024) processes .*notebookPidsLimit 0"):
        run_program(config_for("dev"), recorder=rec)


@pytest.mark.parametrize("value", ["10", "-1", "lots"])
def test_a_pids_limit_too_low_is_refused(value):
    rec = Recorder()
    with pytest.raises(Exception, match=r"tfbox:notebookPidsLimit: .*Fix:"):
        run_program(config_for("dev", notebookPidsLimit=value), recorder=rec)
    assert rec.resources == []
