# Jupyter Server config file: tfbox uploads this file as /etc/jupyter/jupyter_server_config.py into every
# notebook container (next to the JSON config with the password hash; Jupyter reads both).
#
# Why: Jupyter Server checks the password's argon2id hash (m=10 MiB, t=10, p=8: ~0.15 s of CPU) inside
# the request handler, on the one thread that runs the whole server. A flood of wrong-password login
# POSTs, which anyone who can reach the port may send, then holds the event loop: kernels, saves and
# every other user's requests wait seconds per dozen logins. Here the login handler checks the hash on a
# worker thread (argon2-cffi releases the GIL while it hashes), CHECKS_AT_ONCE at a time, and while
# MAX_WAITING logins already wait for a check it answers 429 at once without hashing: a flood costs at
# most one core and never the event loop. The login itself is Jupyter's: same form, cookie, redirect.
#
# Plain Python, no tfbox imports: it runs inside the notebook image's Jupyter, which executes it with
# `c`/`get_config` in its namespace; the unit tests import it as components.login_guard.

# mypy: disable-error-code="no-untyped-call,misc"
# (Jupyter Server's handlers are untyped; the fallback below stands in for its typed decorator)

import asyncio
import concurrent.futures
import typing

from jupyter_server.auth.login import LoginFormHandler

try:
    from jupyter_server.auth.decorator import allow_unauthenticated
except ImportError:  # Jupyter Server < 2.13 has no such marker; its login handler needs none there
    def allow_unauthenticated(method: typing.Any) -> typing.Any:
        return method

CHECKS_AT_ONCE = 1
MAX_WAITING = 4
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE, thread_name_prefix="tfbox-login")
_waiting = [0]  # logins waiting for (or in) a check; touched on the event loop's thread only


class TfboxLoginHandler(LoginFormHandler):
    """Jupyter's login form, its password check off the event loop and bounded."""

    @allow_unauthenticated
    async def post(self) -> None:
        provider = self.identity_provider
        if not getattr(provider, "auth_enabled", False) or not hasattr(provider, "passwd_check") or str(getattr(provider, "token", "")):
            return typing.cast(None, super().post())  # not tfbox's password-only setup: as Jupyter does it
        if _waiting[0] >= MAX_WAITING:
            self.set_status(429)
            self.set_header("Retry-After", "2")
            self._render(message={"error": "Too many login attempts at once; try again in a few seconds"})
            return None
        typed = self.get_argument("password", default="")
        _waiting[0] += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(_POOL, provider.passwd_check, typed)
        finally:
            _waiting[0] -= 1
        if not ok or self.get_argument("new_password", default=""):
            self.set_status(401)
            self._render(message={"error": "Invalid credentials"})
            return None
        user = self.current_user = provider.generate_anonymous_user(self)
        self.log.info(f"User {user.username} logged in.")
        provider.set_login_cookie(self, user)
        self._redirect_safe(self.get_argument("next", default=self.base_url))
        return None


if "get_config" in globals():  # executed by Jupyter as its config file
    get_config().IdentityProvider.login_handler_class = TfboxLoginHandler  # type: ignore[name-defined]  # noqa: F821
