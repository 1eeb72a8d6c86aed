import re

import pytest
from jupyter_server.auth.security import passwd, passwd_check

from components.model import password as pw
from components.model.password import hash_password, new_salt, password_problem, valid_salt

SALT = "0123456789abcdef0123456789abcdef"


def test_jupyter_accepts_our_hash():
    hashed = hash_password("s3cret passphrase", SALT)
    assert passwd_check(hashed, "s3cret passphrase")
    assert not passwd_check(hashed, "s3cret passphrasE")


def test_the_form_and_cost_are_jupyters_own():
    ours = hash_password("s3cret passphrase", SALT)
    theirs = passwd("s3cret passphrase")  # Jupyter Server's own writer, with its random salt
    form = re.compile(r"^argon2:\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")
    m_ours, m_theirs = form.match(ours), form.match(theirs)
    assert m_ours and m_theirs
    assert all(int(a) >= int(b) for a, b in zip(m_ours.groups(), m_theirs.groups(), strict=True)), "at least Jupyter's cost"
    assert len(ours.rsplit("$", 1)[1]) == len(theirs.rsplit("$", 1)[1]), "the same digest length"


def test_unicode_password_round_trips():
    hashed = hash_password("pässwörd-東京-long-enough", SALT)
    assert passwd_check(hashed, "pässwörd-東京-long-enough")


def test_same_password_and_salt_give_the_same_hash_other_salt_another():
    assert hash_password("a long password", SALT) == hash_password("a long password", SALT)
    other = new_salt()
    assert hash_password("a long password", other) != hash_password("a long password", SALT)
    assert passwd_check(hash_password("a long password", other), "a long password")


def test_salts_are_random_and_valid():
    salts = {new_salt() for _ in range(20)}
    assert len(salts) == 20 and all(valid_salt(s) and len(s) == 32 for s in salts)


def test_the_salt_tells_nothing_about_the_password():
    # the old scheme derived the salt from the password: the salt field alone was an oracle
    hashed = hash_password("hunter2hunter2", SALT)
    assert "hunter2" not in hashed and SALT.encode().hex() not in hashed


@pytest.mark.parametrize("salt", ["short", "has space1234567", "x" * 65, "abcdefgh"])
def test_bad_salt(salt):
    assert not valid_salt(salt)
    with pytest.raises(ValueError, match="salt"):
        hash_password("a long password", salt)


def test_empty_password_refused():
    with pytest.raises(ValueError):
        hash_password("", SALT)


def test_short_passwords_are_refused_without_quoting_them():
    assert password_problem("elevenchars") == "is shorter than 12 characters"
    assert password_problem("twelve chars") is None


def test_salt_command_prints_a_new_salt(capsys):
    assert pw.main(["salt"]) == 0
    assert valid_salt(capsys.readouterr().out.strip())
    assert pw.main([]) == 2
