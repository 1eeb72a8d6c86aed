import pytest

from components.model.urls import host_name, service_url


@pytest.mark.parametrize(
    ("host", "name"),
    [("ssh://tfbox@gpu-box", "gpu-box"), ("ssh://me@10.0.0.5:2222", "10.0.0.5"), ("tcp://box:2376", "box"),
     ("unix:///var/run/docker.sock", "localhost")],
)
def test_host_name(host, name):
    assert host_name(host) == name


def test_urls():
    assert service_url("ssh://u@gpu-box", "0.0.0.0", 8888) == "http://gpu-box:8888/"
    assert service_url("ssh://u@gpu-box", "127.0.0.1", 6006) == "http://127.0.0.1:6006/"
    assert service_url("unix:///var/run/docker.sock", "0.0.0.0", 8888) == "http://localhost:8888/"
    assert service_url("unix:///x", "::1", 1) == "http://[::1]:1/"
