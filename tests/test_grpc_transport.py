"""The gRPC adapter's transport against a server that checks ``:authority`` as tonic/h2 does.

grpcio derives a Unix socket channel's ``:authority`` from the socket path (percent-encoded);
Rust's h2 (every tonic server: OpenShell's drivers, the project's peer) refuses such a request
with ``RST_STREAM`` ``PROTOCOL_ERROR``. The server here is a few lines of HTTP/2 over the ``h2``
library, answering ``GetCapabilities`` only, and resetting every stream whose authority is not
a plain host name; no Docker needed.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")
h2_connection = pytest.importorskip("h2.connection")
h2_config = pytest.importorskip("h2.config")
h2_events = pytest.importorskip("h2.events")
h2_errors = pytest.importorskip("h2.errors")

from pytest_sandbox_conformance.adapters.grpc import DEFAULT_AUTHORITY, channel, probe  # noqa: E402
from pytest_sandbox_conformance.grpc import compute_driver_pb2 as pb  # noqa: E402
from pytest_sandbox_conformance.grpc import compute_driver_pb2_grpc as pb_grpc  # noqa: E402

#: What h2 (the Rust crate) accepts as an authority, roughly: a host name and a port.
PLAIN_AUTHORITY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?$")


class StrictH2Server:
    """An HTTP/2 server on a Unix socket that resets streams with an unusual ``:authority``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.authorities: list[str] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        h2 = h2_connection.H2Connection(h2_config.H2Configuration(client_side=False))
        h2.initiate_connection()
        sock.sendall(h2.data_to_send())
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for ev in h2.receive_data(data):
                    if isinstance(ev, h2_events.RequestReceived):
                        self._request(h2, ev)
                    elif isinstance(ev, h2_events.DataReceived):
                        h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                try:
                    sock.sendall(h2.data_to_send())
                except OSError:
                    return

    def _request(self, h2, ev) -> None:
        headers = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes)
                   else v for k, v in ev.headers}
        authority = headers.get(":authority", "")
        self.authorities.append(authority)
        if not PLAIN_AUTHORITY.match(authority):
            h2.reset_stream(ev.stream_id, h2_errors.ErrorCodes.PROTOCOL_ERROR)
            return
        reply = pb.GetCapabilitiesResponse(driver_name="strict-h2", driver_version="7")
        payload = reply.SerializeToString()
        h2.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        h2.send_data(ev.stream_id, b"\0" + struct.pack(">I", len(payload)) + payload)
        h2.send_headers(ev.stream_id, [("grpc-status", "0")], end_stream=True)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def strict(tmp_path):
    server = StrictH2Server(tmp_path / "driver.sock")
    yield server
    server.close()


def _capabilities(ch) -> pb.GetCapabilitiesResponse:
    return pb_grpc.ComputeDriverStub(ch).GetCapabilities(pb.GetCapabilitiesRequest(), timeout=5)


def test_grpcio_alone_sends_an_authority_that_tonic_refuses(strict):
    # The server is strict the way tonic is: what grpcio sends by default is refused.
    with grpc.insecure_channel(f"unix:{strict.path}") as plain:
        with pytest.raises(grpc.RpcError) as exc:
            _capabilities(plain)
    assert exc.value.code() == grpc.StatusCode.INTERNAL and "RST_STREAM" in exc.value.details()
    assert "%2F" in strict.authorities[-1] or "/" in strict.authorities[-1]


def test_the_adapter_channel_sends_localhost(strict):
    with channel(str(strict.path), DEFAULT_AUTHORITY) as ch:
        assert _capabilities(ch).driver_name == "strict-h2"
    assert strict.authorities[-1] == "localhost"


def test_the_authority_is_an_option(strict):
    with channel(str(strict.path), "driver.internal:50051") as ch:
        assert _capabilities(ch).driver_version == "7"
    assert strict.authorities[-1] == "driver.internal:50051"
    found = probe({"socket": str(strict.path), "authority": "driver.internal"}, "docker")
    assert found.timing == "approximate"
    with pytest.raises(ValueError, match="authority"):
        probe({"socket": str(strict.path), "authority": " "}, "docker")
