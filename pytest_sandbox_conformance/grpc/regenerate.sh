#!/usr/bin/env bash
# Regenerate compute_driver_pb2.py and compute_driver_pb2_grpc.py from compute_driver.proto.
# Commit the output.
#
# The committed files are made with grpcio-tools 1.62.3 (protobuf 4.25 gencode): code that old has
# no runtime version guard, so it runs with every grpcio >= 1.60 and protobuf >= 4.25 (newer tools
# emit code that refuses any grpcio/protobuf older than themselves). PYTHON may name an interpreter
# that has that version (e.g. python -m venv /tmp/gt && /tmp/gt/bin/pip install grpcio-tools==1.62.3
# && PYTHON=/tmp/gt/bin/python ./regenerate.sh).
set -euo pipefail
PYTHON="${PYTHON:-python}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
"$PYTHON" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. compute_driver.proto
# protoc writes "import compute_driver_pb2 as ..." (a top-level import); make it package-relative so
# the module imports as pytest_sandbox_conformance.grpc.compute_driver_pb2.
sed -i 's/^import compute_driver_pb2 as /from . import compute_driver_pb2 as /' compute_driver_pb2_grpc.py
"$PYTHON" - <<'PY'
import importlib.metadata as m
print("generated with grpcio-tools", m.version("grpcio-tools"), "protobuf", m.version("protobuf"))
PY
