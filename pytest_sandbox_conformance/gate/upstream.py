"""Where the observation gate forwards to: the engine's URL, and TLS as the Docker CLI means it.
Standard library only.

Supported engine URLs: ``unix:///path``, ``unix:/path`` and ``http+unix:///path`` (also
requests-unixsocket's ``http+unix://%2Fpath``); ``tcp://host:port`` and ``http://host:port``
(plain TCP; port 2375 by default); and TLS:

- ``tcp://host:port`` while ``DOCKER_TLS_VERIFY`` is set (to anything but the empty string):
  TLS, the engine's certificate verified against ``$DOCKER_CERT_PATH/ca.pem`` (which must exist)
  and its host name checked; while only ``DOCKER_TLS`` is set: TLS without verifying the engine.
  Port 2376 by default. As the Docker CLI does.
- ``https://host:port``: TLS, verified against ``ca.pem`` when it exists, else the system's
  certificate authorities (the Docker SDK for Python spells a TLS engine this way); unverified
  only while ``DOCKER_TLS`` is set and ``DOCKER_TLS_VERIFY`` is not.

``DOCKER_CERT_PATH`` defaults to ``~/.docker``. The client certificate ``cert.pem`` with its key
``key.pem`` is presented when both exist there (one without the other is an error). The
variables are read once, when the :class:`Upstream` is made.

**How TLS travels.** The rest of the gate works on plain sockets (it half-closes, selects and
reads raw bytes, from two threads per pass-through). A TLS connection cannot be used that way
(OpenSSL allows no concurrent read and write on one connection, and a TLS connection cannot be
half-closed without ending it), so :meth:`Upstream.connect` returns one end of a socket pair
and a *bridge* thread carries the bytes between its other end and the TLS connection, reading
and writing both without blocking. The client's half-close is not forwarded to a TLS engine
(the engine's side stays open until it answers); when the gate closes its end, the bridge
closes the TLS connection.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import urllib.parse
from pathlib import Path
from typing import Callable, Mapping

from .errors import GateError

__all__ = ["SUPPORTED", "Upstream"]

SUPPORTED = ("unix:///path", "unix:/path", "tcp://host:port", "http://host:port",
             "https://host:port", "tcp://host:port with DOCKER_TLS_VERIFY")
#: How many bytes the TLS bridge buffers in each direction before it stops reading that side.
BRIDGE_BUFFER = 1024 * 1024


class Upstream:
    """Where the engine is: a Unix socket path, or a TCP ``(host, port)`` with or without TLS.

    ``env`` is where the TLS variables are read (default :data:`os.environ`); ``spawn`` starts a
    TLS bridge's thread (default: a daemon thread).
    """

    def __init__(self, url: str, env: Mapping[str, str] | None = None,
                 spawn: Callable[[Callable[..., None], str, object, object], object] | None
                 = None) -> None:
        self.url = url
        self.unix_path: str | None = None
        self.address: tuple[str, int] | None = None
        self.tls: ssl.SSLContext | None = None
        self.tls_note = ""
        self._spawn = spawn or _daemon
        env = os.environ if env is None else env
        if url.startswith(("unix:", "http+unix:")):
            rest = url.partition(":")[2]
            path = rest[2:] if rest.startswith("//") else rest
            if path[:3].upper() == "%2F":  # requests-unixsocket's spelling
                path = urllib.parse.unquote(path)
            if not path.startswith("/"):
                raise GateError(f"the engine URL {url!r} has no absolute socket path; "
                                f"the gate supports {', '.join(SUPPORTED)}")
            self.unix_path = path
            return
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in ("tcp", "http", "https"):
            raise GateError(f"the observation gate cannot forward to the engine at {url!r}: it "
                            f"supports {', '.join(SUPPORTED)} (no ssh or named pipes); give it "
                            "a local socket or a TCP address of the engine")
        verify = bool(env.get("DOCKER_TLS_VERIFY"))
        wants_tls = scheme == "https" or (scheme == "tcp"
                                          and (verify or bool(env.get("DOCKER_TLS"))))
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise GateError(f"the engine URL {url!r} has a bad port ({exc}); the gate supports "
                            f"{', '.join(SUPPORTED)}") from None
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise GateError(f"the engine URL {url!r} is not of the form "
                            f"{scheme}://host:port; the gate supports {', '.join(SUPPORTED)}")
        default_port = 2376 if wants_tls and scheme == "tcp" else {"tcp": 2375, "http": 80,
                                                                    "https": 443}[scheme]
        self.address = (parts.hostname, port or default_port)
        if wants_tls:
            if scheme == "https":  # verified unless only DOCKER_TLS asks for TLS without it
                verify = verify or not env.get("DOCKER_TLS")
            self.tls = _tls_context(url, env, verify, required_ca=scheme == "tcp")
            self.tls_note = "TLS, " + ("engine verified" if verify else "engine NOT verified")

    def describe(self) -> str:
        return self.url + (f" ({self.tls_note})" if self.tls_note else "")

    def connect(self, timeout: float) -> socket.socket:
        """A new connection to the engine (``OSError``, ``ssl.SSLError`` included, when it
        cannot be reached); for TLS, one end of a socket pair bridged to the TLS connection."""
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(self.unix_path)
            except BaseException:
                sock.close()
                raise
            return sock
        assert self.address is not None
        raw = socket.create_connection(self.address, timeout=timeout)
        if self.tls is None:
            return raw
        try:
            tls = self.tls.wrap_socket(raw, server_hostname=self.address[0])  # handshakes now
        except BaseException:
            raw.close()
            raise
        ours, theirs = socket.socketpair()
        try:
            self._spawn(_bridge, "sbx-gate-tls", tls, theirs)
        except BaseException:
            for sock in (ours, theirs, tls):
                sock.close()
            raise
        ours.settimeout(timeout)
        return ours

    def http(self, timeout: float) -> http.client.HTTPConnection:
        """An :class:`http.client.HTTPConnection` to the engine (connects on first use)."""
        upstream = self

        class _Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = upstream.connect(timeout)

        return _Connection("localhost", timeout=timeout)


def _daemon(target: Callable[..., None], name: str, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def _tls_context(url: str, env: Mapping[str, str], verify: bool,
                 required_ca: bool) -> ssl.SSLContext:
    folder = Path(env.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
    ca, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        if ca.is_file():
            _load(context.load_verify_locations, url, ca, cafile=str(ca))
        elif required_ca:
            raise GateError(f"the engine at {url!r} needs TLS verified against {ca} "
                            f"(DOCKER_TLS_VERIFY is set), and {ca} does not exist: set "
                            "DOCKER_CERT_PATH to the folder of ca.pem, cert.pem and key.pem")
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert.is_file() != key.is_file():
        have, missing = (cert, key) if cert.is_file() else (key, cert)
        raise GateError(f"the engine at {url!r}: {have} exists but {missing} does not; the "
                        "client certificate needs both (or neither)")
    if cert.is_file():
        _load(context.load_cert_chain, url, cert, str(cert), str(key))
    return context


def _load(loader: Callable[..., None], url: str, path: Path, *args: str, **kwargs: str) -> None:
    try:
        loader(*args, **kwargs)
    except (OSError, ssl.SSLError) as exc:
        raise GateError(f"the engine at {url!r}: cannot load {path}: {exc}") from None


def _bridge(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Carry bytes between ``plain`` (the gate's side) and ``tls`` until the engine closes
    (then ``plain`` gets EOF once everything is written) or the gate closes its end."""
    tls.setblocking(False)
    plain.setblocking(False)
    to_tls = b""
    to_plain = b""
    plain_eof = tls_eof = False
    tls_wants_write = False
    poller = select.poll()
    hung = select.POLLHUP | select.POLLERR | select.POLLNVAL
    try:
        while True:
            plain_mask = select.POLLIN if not plain_eof and len(to_tls) < BRIDGE_BUFFER else 0
            if to_plain:
                plain_mask |= select.POLLOUT
            poller.register(plain, plain_mask)
            if not tls_eof:
                tls_mask = select.POLLIN if len(to_plain) < BRIDGE_BUFFER else 0
                if to_tls or tls_wants_write:
                    tls_mask |= select.POLLOUT
                poller.register(tls, tls_mask)
            if not tls_eof and tls.pending() and len(to_plain) < BRIDGE_BUFFER:
                ready = {tls.fileno(): select.POLLIN}  # decrypted bytes wait inside the TLS object
            else:
                ready = dict(poller.poll())
            on_plain = ready.get(plain.fileno(), 0)
            on_tls = 0 if tls_eof else ready.get(tls.fileno(), 0)
            if on_plain & hung and not on_plain & select.POLLIN:
                return  # the gate closed its end: nobody reads the rest
            if on_plain & select.POLLIN and not plain_eof:
                try:
                    data = plain.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    return
                if data == b"":
                    plain_eof = True  # a half-close: not forwarded to a TLS engine
                elif data:
                    to_tls += data
            if to_tls and not tls_eof:
                try:
                    to_tls = to_tls[tls.send(to_tls):]
                    tls_wants_write = False
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
                except OSError:
                    tls_eof, to_tls = True, b""
            if not tls_eof and (on_tls or tls_wants_write or tls.pending()):
                while len(to_plain) < BRIDGE_BUFFER:
                    try:
                        data = tls.recv(65536)
                    except ssl.SSLWantReadError:
                        break
                    except ssl.SSLWantWriteError:
                        tls_wants_write = True
                        break
                    except OSError:  # ssl.SSLZeroReturnError (close_notify) included
                        data = b""
                    if not data:
                        tls_eof = True
                        break
                    to_plain += data
                    if not tls.pending():
                        break
                if tls_eof:
                    poller.unregister(tls)
            if to_plain:
                try:
                    to_plain = to_plain[plain.send(to_plain):]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    return
            if tls_eof and not to_plain:
                try:
                    plain.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
    finally:
        for sock in (tls, plain):
            try:
                sock.close()
            except OSError:
                pass
