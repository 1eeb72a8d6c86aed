"""TensorBoard behind the notebook's login: a Jupyter Server 2 extension that runs inside the notebook.

TensorBoard has no login of its own, so it stays on loopback (or the seat's own network) and this
extension serves it at `<notebook base URL>/tensorboard/` to a logged-in user only: over the notebook's
TLS, with the notebook's password, an unauthenticated browser sent to the login page (API calls get
403). tfbox uploads this file next to the generated Jupyter config (components.commands
`tensorboard_proxy_config`), which puts its directory on `sys.path`, enables it and names the one
upstream it forwards to: the seat's TensorBoard container on the seat's network (sidecar mode), or
127.0.0.1:6006 in the notebook container (exec mode). The upstream comes from tfbox's config, never
from the request, so this is no open proxy.

Only the standard library, tornado and jupyter_server are imported (always present with Jupyter Server
2): the official TensorFlow images do not ship jupyter-server-proxy, and its aiohttp is a compiled wheel.
The pure parts (URLs, which headers cross) are plain functions the unit tests read directly; the
tornado handlers are built only when Jupyter loads the extension.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MODULE = "tfbox_tensorboard_proxy"  # the name it is uploaded and imported under in the notebook container
PREFIX = "tensorboard"  # served at <base_url>tensorboard/
# TensorBoard's index.html names its Roboto fonts from the server root (`url(/font-roboto/…)`): served too,
# path kept, so the page looks as on its own port. Jupyter serves nothing there.
ROOT_PATHS = ("font-roboto",)
TARGET_SETTING = "tfbox_tensorboard_target"  # tornado setting (ServerApp.tornado_settings) with the upstream

# Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, never forwarded either way.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade",
})
# The notebook's credentials stay with the notebook: TensorBoard (and anything that reads its logs or
# requests) never sees the session cookie, a token or the XSRF token. Host and Content-Length are set anew.
REQUEST_DROPPED = HOP_BY_HOP | frozenset({
    "cookie", "authorization", "x-xsrftoken", "x-csrftoken", "host", "content-length",
})
# TensorBoard sets no cookie; none may land on the notebook's origin through it. The length is the
# streamed body's (chunked), not the upstream's.
RESPONSE_DROPPED = HOP_BY_HOP | frozenset({"set-cookie", "content-length"})
HEAD_DROPPED = HOP_BY_HOP | frozenset({"set-cookie"})  # a HEAD answer has no body: its length is TensorBoard's
METHODS = ("GET", "HEAD", "POST")  # TensorBoard's frontend POSTs some data queries (time series)


def url_join(base: str, *parts: str) -> str:
    """`/` + `tensorboard` -> `/tensorboard`, as jupyter_server's url_path_join, without importing it."""
    out = base
    for part in parts:
        out = out.rstrip("/") + "/" + part.lstrip("/")
    return out


def proxy_path(base_url: str) -> str:
    """Where the proxy is served: `<base_url>tensorboard`."""
    return url_join(base_url, PREFIX)


def upstream_url(target: str, base_url: str, request_path: str, query: str = "") -> str | None:
    """The TensorBoard URL of a request to the proxy, or None for a path outside it.

    The `/tensorboard` prefix is stripped (TensorBoard's frontend uses relative URLs, so it needs no
    --path_prefix and its own port keeps working); the path stays as the browser encoded it, and only
    the path and query come from the request: scheme, host and port are tfbox's.
    """
    prefix = proxy_path(base_url) + "/"
    if request_path.startswith(prefix):
        rest = request_path[len(prefix):]
    elif any(request_path.startswith(url_join(base_url, p) + "/") for p in ROOT_PATHS):
        rest = request_path[len(url_join(base_url, "")):]
    else:
        return None
    return f"{target.rstrip('/')}/{rest}" + (f"?{query}" if query else "")


def request_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The browser's headers that go on to TensorBoard: not the notebook's credentials, not hop-by-hop."""
    return [(k, v) for k, v in headers if k.lower() not in REQUEST_DROPPED]


def response_headers(headers: Iterable[tuple[str, str]], base_url: str, head: bool = False) -> list[tuple[str, str]]:
    """TensorBoard's headers that go back to the browser; an absolute-path redirect stays under the proxy."""
    out = []
    dropped = HEAD_DROPPED if head else RESPONSE_DROPPED
    for k, v in headers:
        if k.lower() in dropped:
            continue
        if k.lower() == "location" and v.startswith("/") and not v.startswith("//"):
            v = url_join(proxy_path(base_url), v)
        out.append((k, v))
    return out


def _handlers(target: str, base_url: str) -> list[tuple[str, Any, dict[str, Any]]]:
    """The tornado routes: `/tensorboard` redirects to `/tensorboard/`, everything below is proxied."""
    from jupyter_server.base.handlers import JupyterHandler
    from tornado import httpclient, httputil, web

    root = proxy_path(base_url)

    class AddSlash(JupyterHandler):
        @web.authenticated
        def get(self) -> None:
            self.redirect(root + "/" + (f"?{self.request.query}" if self.request.query else ""))

        head = get

    class Proxy(JupyterHandler):
        def check_xsrf_cookie(self) -> None:
            """TensorBoard's frontend POSTs without Jupyter's XSRF token; a same-origin request (by its
            Referer, as jupyter_server accepts for GET) is enough: a cross-site page cannot use the login."""
            try:
                super().check_xsrf_cookie()
            except web.HTTPError:
                if not self.check_referer():
                    raise

        @web.authenticated
        async def get(self) -> None:
            await self._forward()

        head = get
        post = get

        def compute_etag(self) -> None:
            """TensorBoard's own ETag, if any, passes through; tornado's of a streamed body would be wrong."""
            return None

        async def _forward(self) -> None:
            url = upstream_url(target, base_url, self.request.path, self.request.query)
            if url is None:
                raise web.HTTPError(404)
            started, head = False, self.request.method == "HEAD"
            upstream = httputil.HTTPHeaders()

            def on_header(line: str) -> None:
                nonlocal started
                if line.startswith("HTTP/"):
                    start = httputil.parse_response_start_line(line.strip())
                    self.set_status(start.code, start.reason)
                    upstream.clear()
                    self.clear_header("Content-Type")  # TensorBoard's, not tornado's text/html default
                elif line.strip():
                    upstream.parse_line(line)
                else:
                    seen = set()
                    for k, v in response_headers(upstream.get_all(), base_url, head):
                        if k.lower() not in seen:  # TensorBoard's value replaces a default of the same name
                            seen.add(k.lower())
                            self.clear_header(k)
                        self.add_header(k, v)
                    started = True

            def on_chunk(chunk: bytes) -> None:
                self.write(chunk)
                self.flush()

            forwarded = httputil.HTTPHeaders()
            for k, v in request_headers(self.request.headers.get_all()):
                forwarded.add(k, v)
            body = self.request.body if self.request.method == "POST" else None
            request = httpclient.HTTPRequest(
                url, method=self.request.method, headers=forwarded,
                body=body, allow_nonstandard_methods=True, follow_redirects=False, decompress_response=False,
                header_callback=on_header, streaming_callback=None if head else on_chunk,
                connect_timeout=10, request_timeout=300,
            )
            try:
                response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
                error = response.error
            except OSError as e:  # refused, unreachable, name not resolved: no HTTP answer at all
                error = e
            if not started:  # TensorBoard down or still starting: say so, not a bare 500
                self.clear()
                self.set_status(502)
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.finish(f"TensorBoard does not answer ({error}); it may still be starting.\n")
                return
            self.finish()

    return [(root, AddSlash, {}), (root + "/.*", Proxy, {}),
            *((url_join(base_url, p) + "/.*", Proxy, {}) for p in ROOT_PATHS)]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": MODULE}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add the routes, with the upstream tfbox configured (ServerApp.tornado_settings)."""
    web_app = serverapp.web_app
    target = web_app.settings.get(TARGET_SETTING)
    if not target:
        serverapp.log.error("tfbox TensorBoard proxy: no %s in ServerApp.tornado_settings; not serving it", TARGET_SETTING)
        return
    base_url = web_app.settings.get("base_url", "/")
    web_app.add_handlers(".*$", _handlers(target, base_url))
    serverapp.log.info("tfbox TensorBoard proxy: %s -> %s", proxy_path(base_url) + "/", target)
