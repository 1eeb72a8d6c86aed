import pytest
from jupyter_server.auth.security import passwd_check

from components.password import check_password, derive_salt, hash_password


def test_jupyter_accepts_our_hash():
    hashed = hash_password("s3cret pass", derive_salt("s3cret pass", "tfbox/dev"))
    assert passwd_check(hashed, "s3cret pass")
    assert not passwd_check(hashed, "wrong")
    assert check_password(hashed, "s3cret pass") and not check_password(hashed, "wrong")


def test_unicode_password_round_trips():
    hashed = hash_password("pässwörd-東京", derive_salt("pässwörd-東京", "tfbox/gpu-box"))
    assert passwd_check(hashed, "pässwörd-東京")


def test_salt_is_stable_per_stack_and_differs_between_stacks():
    assert derive_salt("pw", "tfbox/dev") == derive_salt("pw", "tfbox/dev")
    assert derive_salt("pw", "tfbox/dev") != derive_salt("pw", "tfbox/gpu-box")
    assert hash_password("pw", derive_salt("pw", "tfbox/dev")) == hash_password("pw", derive_salt("pw", "tfbox/dev"))


def test_hash_does_not_contain_the_password():
    assert "hunter2" not in hash_password("hunter2", derive_salt("hunter2", "s"))


@pytest.mark.parametrize("salt", ["short", "has space12", "x" * 65])
def test_bad_salt(salt):
    with pytest.raises(ValueError, match="salt"):
        hash_password("pw", salt)


def test_empty_password_refused():
    with pytest.raises(ValueError):
        hash_password("", "abcdefgh")
