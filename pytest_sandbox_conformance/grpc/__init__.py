"""The OpenShell compute-driver gRPC service (``openshell.compute.v1.ComputeDriver``).

``compute_driver.proto`` is the project's own proto of the service; ``compute_driver_pb2*.py`` are
generated from it by ``regenerate.sh`` and committed. ``server.py`` serves the reference driver
over the service on a Unix socket; ``pytest_sandbox_conformance.adapters.grpc`` is the suite's
client. Importing this package needs nothing; its modules need ``grpcio`` and ``protobuf`` (the
``grpc`` extra). See ``docs/grpc.md``.
"""
