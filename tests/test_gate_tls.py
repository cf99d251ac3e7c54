"""The observation gate in front of a TLS engine (``DOCKER_HOST=tcp://...:2376`` with
``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``, as the Docker CLI means them).

The engine is the stub of ``tests/gate_stub.py`` behind a TLS-terminating front made here with
the ``ssl`` module: it requires a client certificate signed by a CA the test makes (with the
``openssl`` command; skipped without it), and relays the plain bytes to the stub.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from gate_stub import EventClient, container, event, hold, ids_of, request, stub, until
from pytest_sandbox_conformance.gate import GateError, ObservationGate

__all__ = ["stub"]  # the fixture, imported from gate_stub

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=folder)
    return folder / "ca.pem", folder / "ca-key.pem"


def issue(ca: tuple[Path, Path], folder: Path, stem: str, cn: str, san: str | None) -> None:
    """``stem.pem`` and ``stem-key.pem`` in ``folder``, signed by ``ca``."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout",
             f"{stem}-key.pem", "-out", f"{stem}.csr", cwd=folder)
    ext = folder / f"{stem}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", f"{stem}.pem",
             cwd=folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, the engine's certificate (localhost) and a client's; and a stranger CA."""
    root = tmp_path_factory.mktemp("pki")
    ca = make_ca(root / "ca", "sbx test CA")
    issue(ca, root / "engine", "server", "localhost", "DNS:localhost")
    client = root / "client"
    issue(ca, client, "cert", "sbx client", None)
    (client / "key.pem").write_bytes((client / "cert-key.pem").read_bytes())
    shutil.copy(ca[0], client / "ca.pem")
    stranger = make_ca(root / "stranger", "another CA")
    return {"ca": ca[0], "server": root / "engine", "client": client, "stranger": stranger[0]}


class TlsFront:
    """A TLS front for the stub engine on 127.0.0.1: client certificates required."""

    def __init__(self, pki: dict, upstream: str) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki["server"] / "server.pem", pki["server"] / "server-key.pem")
        self.context.load_verify_locations(pki["ca"])
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.upstream = upstream[len("unix://"):]
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes: list[str] = []  # "ok" or the error
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.handshakes.append(str(exc))
            raw.close()
            return
        self.handshakes.append("ok")
        # One thread per connection does both directions: an SSL object must never be read,
        # written or shut down from two threads at once (OpenSSL's SSL* is not thread-safe;
        # a recv in one thread beside an unwrap in another crashed an xdist worker).
        with conn, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
            up.connect(self.upstream)
            while True:
                readable, _, _ = select.select([conn, up], [], [], 1.0)
                if conn in readable or conn.pending():
                    conn.settimeout(0.2)  # a partial record must not stop the other direction
                    try:
                        data = conn.recv(65536)
                    except (TimeoutError, ssl.SSLWantReadError):
                        data = None  # a partial record, or a record without data
                    except OSError:
                        return
                    if data == b"":
                        return  # the gate closed (close_notify or EOF)
                    if data:
                        try:
                            up.sendall(data)
                        except OSError:
                            return
                if up in readable:
                    try:
                        data = up.recv(65536)
                    except OSError:
                        return
                    if not data:
                        try:
                            conn.unwrap()
                        except (OSError, ValueError):
                            pass
                        return
                    conn.settimeout(10)
                    try:
                        conn.sendall(data)
                    except OSError:
                        return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def front(pki, stub):
    front = TlsFront(pki, stub[1])
    yield front
    front.close()


def tls_env(folder: Path, verify: bool = True) -> dict[str, str]:
    return {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(folder)} if verify else {
        "DOCKER_TLS": "1", "DOCKER_CERT_PATH": str(folder)}


def test_lists_events_and_bodies_cross_a_verified_tls_engine(pki, front, stub):
    engine, _ = stub
    engine.containers = [container("aa", 10), container("bb", 20)]
    with ObservationGate(f"tcp://localhost:{front.port}", env=tls_env(pki["client"])) as gate:
        assert request(gate, "/_ping")[0] == 200
        body = bytes(range(256)) * 400
        assert request(gate, "/v1.41/build", "POST", body)[::2] == (201, body)
        gate.set_holding(True)
        client = hold(gate)
        record = gate.release("newest")
        assert ids_of(client.result()[2]) == engine.ids("bb", "aa") == list(record.ids)
        events = EventClient(gate)
        assert until(lambda: gate.event_streams() == 1)
        engine.send(event("die"))
        assert until(lambda: gate.buffered_events() == 1)
        with gate.during("DeleteSandbox"):
            assert len(events.wait_lines(1)) == 1
        events.close()
    assert front.handshakes and set(front.handshakes) == {"ok"}


def test_an_engine_certificate_from_another_ca_is_refused(pki, front, tmp_path):
    folder = tmp_path / "certs"
    shutil.copytree(pki["client"], folder)
    shutil.copy(pki["stranger"], folder / "ca.pem")
    with ObservationGate(f"tcp://localhost:{front.port}", env=tls_env(folder)) as gate:
        status, _, body = request(gate, "/_ping")
    assert status == 502
    assert "CERTIFICATE_VERIFY_FAILED" in json.loads(body)["message"]


def test_the_engine_host_name_is_checked(pki, front):
    # The engine's certificate names localhost, not 127.0.0.1.
    with ObservationGate(f"tcp://127.0.0.1:{front.port}", env=tls_env(pki["client"])) as gate:
        status, _, body = request(gate, "/_ping")
    assert status == 502 and "127.0.0.1" in json.loads(body)["message"]


def test_docker_tls_without_verify_trusts_any_engine(pki, front, tmp_path):
    folder = tmp_path / "certs"
    shutil.copytree(pki["client"], folder)
    (folder / "ca.pem").unlink()  # not needed without verification
    with ObservationGate(f"tcp://127.0.0.1:{front.port}",
                         env=tls_env(folder, verify=False)) as gate:
        assert request(gate, "/_ping")[0] == 200


def test_an_engine_that_wants_a_client_certificate_refuses_a_gate_without_one(pki, front,
                                                                                tmp_path):
    folder = tmp_path / "certs"
    folder.mkdir()
    shutil.copy(pki["ca"], folder / "ca.pem")
    with ObservationGate(f"tcp://localhost:{front.port}", env=tls_env(folder)) as gate:
        status, _, _ = request(gate, "/_ping")
    assert status == 502
    assert until(lambda: front.handshakes and front.handshakes[-1] != "ok")


def test_missing_certificate_files_are_usage_errors(pki, tmp_path):
    with pytest.raises(GateError, match=r"ca\.pem does not exist.*DOCKER_CERT_PATH"):
        ObservationGate("tcp://localhost:2376", env=tls_env(tmp_path))
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(pki["ca"], half / "ca.pem")
    shutil.copy(pki["client"] / "cert.pem", half / "cert.pem")
    with pytest.raises(GateError, match=r"cert\.pem exists but .*key\.pem does not"):
        ObservationGate("tcp://localhost:2376", env=tls_env(half))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ca.pem").write_text("not a certificate")
    with pytest.raises(GateError, match=r"cannot load .*ca\.pem"):
        ObservationGate("tcp://localhost:2376", env=tls_env(broken))


def test_tls_urls_and_default_ports(pki):
    env = tls_env(pki["client"])
    gate = ObservationGate("tcp://localhost", env=env)
    assert gate._upstream.address == ("localhost", 2376) and gate._upstream.tls  # noqa: SLF001
    gate.close()
    plain = ObservationGate("tcp://localhost", env={})
    assert plain._upstream.address == ("localhost", 2375) and not plain._upstream.tls  # noqa: SLF001
    plain.close()
    https = ObservationGate("https://localhost:2376", env={"DOCKER_CERT_PATH": str(pki["client"])})
    assert https._upstream.tls is not None  # noqa: SLF001
    assert https._upstream.tls.verify_mode == ssl.CERT_REQUIRED  # noqa: SLF001
    https.close()
