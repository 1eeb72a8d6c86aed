"""The notebook's certificate: made, read back, checked against its key, fingerprinted."""

import datetime as dt
import hashlib
import ipaddress
import ssl
import subprocess
import sys

import pytest
from cryptography import x509

from components.model.tls import (
    check_pair,
    fingerprint_sha256,
    generate_self_signed,
    load_cert,
    spki_sha256_base64,
    subject_names,
)


@pytest.fixture(scope="module")
def pair():
    return generate_self_signed(subject_names("ssh://tfbox@gpu-box", "0.0.0.0"))


def test_names_come_from_the_docker_host_and_bind_plus_loopback():
    names = subject_names("ssh://tfbox@gpu-box", "0.0.0.0")
    assert (names.dns, names.ips) == (("gpu-box", "localhost"), ("127.0.0.1",))
    names = subject_names("ssh://me@10.0.0.5:2222", "192.168.1.7")
    assert names.dns == ("localhost",) and names.ips == ("10.0.0.5", "192.168.1.7", "127.0.0.1")


def test_self_signed_certificate_names_the_host(pair):
    cert = load_cert(pair.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gpu-box", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > dt.timedelta(days=3000)
    assert check_pair(pair.cert_pem, pair.key_pem) == []


def test_python_ssl_loads_the_pair(pair, tmp_path):
    # what Jupyter (tornado) does with ServerApp.certfile/keyfile
    (tmp_path / "c.pem").write_text(pair.cert_pem)
    (tmp_path / "k.pem").write_text(pair.key_pem)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")


def test_fingerprint_is_the_sha256_of_the_der(pair):
    der = ssl.PEM_cert_to_DER_cert(pair.cert_pem)
    expected = hashlib.sha256(der).hexdigest().upper()
    assert fingerprint_sha256(pair.cert_pem).replace(":", "") == expected
    assert len(spki_sha256_base64(pair.cert_pem)) == 44


def test_a_key_of_another_certificate_is_refused(pair):
    other = generate_self_signed(subject_names("unix:///var/run/docker.sock", "127.0.0.1"))
    assert check_pair(pair.cert_pem, other.key_pem) == ["tlsKey does not belong to tlsCert (their public keys differ)"]


def test_garbage_and_expired_are_refused_without_quoting_the_key(pair):
    assert check_pair("not a cert", pair.key_pem) == ["tlsCert is not a PEM certificate (-----BEGIN CERTIFICATE-----)"]
    problems = check_pair(pair.cert_pem, "secret-key-material")
    assert problems and "secret-key-material" not in " ".join(problems)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4000)
    assert any("expired" in p for p in check_pair(pair.cert_pem, pair.key_pem, now=later))


def test_chain_file_uses_the_first_certificate(pair):
    other = generate_self_signed(subject_names("unix:///var/run/docker.sock", "127.0.0.1"))
    assert check_pair(pair.cert_pem + other.cert_pem, pair.key_pem) == []


def test_selfsigned_command_writes_a_private_key_and_never_overwrites(tmp_path):
    cmd = [sys.executable, "-m", "components.model.tls", "selfsigned", "--docker-host", "ssh://u@box", "--bind", "0.0.0.0",
           "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")]
    first = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "PRIVATE KEY" not in first.stdout and fingerprint_sha256((tmp_path / "c.pem").read_text()) in first.stdout
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    key = (tmp_path / "k.pem").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert again.returncode == 1 and (tmp_path / "k.pem").read_text() == key
