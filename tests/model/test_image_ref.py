import pytest

from components.model.image_ref import ImageRefError, parse_image_ref

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "repo", "tag", "digest"),
    [
        ("tensorflow/tensorflow:latest-jupyter", "tensorflow/tensorflow", "latest-jupyter", None),
        ("tensorflow/tensorflow", "tensorflow/tensorflow", None, None),
        (f"tensorflow/tensorflow@{DIGEST}", "tensorflow/tensorflow", None, DIGEST),
        (f"tensorflow/tensorflow:2.20.0-gpu-jupyter@{DIGEST}", "tensorflow/tensorflow", "2.20.0-gpu-jupyter", DIGEST),
        ("127.0.0.1:5000/tensorflow/tensorflow:latest-jupyter", "127.0.0.1:5000/tensorflow/tensorflow", "latest-jupyter", None),
        ("localhost/lab:1", "localhost/lab", "1", None),
        ("nvcr.io/nvidia/tensorflow:24.01-tf2-py3", "nvcr.io/nvidia/tensorflow", "24.01-tf2-py3", None),
    ],
)
def test_valid(text, repo, tag, digest):
    ref = parse_image_ref(text)
    assert (ref.repository, ref.tag, ref.digest) == (repo, tag, digest)
    assert str(ref) == text
    assert ref.pinned == (digest is not None)


@pytest.mark.parametrize("text", ["", "Tensorflow/TensorFlow", "tensorflow/tensorflow:", "a b", "repo@sha256:abc", "repo:tag:tag"])
def test_invalid(text):
    with pytest.raises(ImageRefError, match="not an image reference"):
        parse_image_ref(text)


def test_cpu_only_tags():
    assert parse_image_ref("tensorflow/tensorflow:latest-jupyter").cpu_only
    assert not parse_image_ref("tensorflow/tensorflow:latest-gpu-jupyter").cpu_only
    assert parse_image_ref("127.0.0.1:5000/tensorflow/tensorflow:latest-jupyter").cpu_only
    assert not parse_image_ref("nvcr.io/nvidia/tensorflow:24.01-tf2-py3").cpu_only


@pytest.mark.parametrize("text", ["UPPER/case", "Tensorflow/tensorflow:latest-jupyter", "Me/lab@" + DIGEST, "LOCALHOST/lab"])
def test_capitals_in_the_repository_path_are_refused_with_the_lower_case_spelling(text):
    with pytest.raises(ImageRefError, match="lower case") as e:
        parse_image_ref(text)
    assert text.split("/")[0].lower() + "/" in str(e.value)


def test_capitals_in_a_registry_domain_are_fine():
    assert parse_image_ref("Registry.Example.com:5000/team/lab:1").repository == "Registry.Example.com:5000/team/lab"
