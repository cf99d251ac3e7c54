#!/usr/bin/env bash
# Build the Rust peer driver (sbx-peer-driver) and print the binary's path on stdout.
#
#   bash tests/peer_driver/build.sh        # from anywhere; cargo's own output goes to stderr
#
# Idempotent: `cargo build --locked` (the committed Cargo.lock, no dependency resolution) into
# the git-ignored <repo>/.cache/peer-driver; when nothing changed it is a fast no-op. Needs only
# cargo (>= 1.88) and the crate registry: the proto is compiled by protox (pure Rust), so no
# system protoc. Exit status: cargo's (127 without cargo).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR="$root/.cache/peer-driver"
cargo=$(command -v cargo || true)
[ -n "$cargo" ] || { [ -x "$HOME/.cargo/bin/cargo" ] && cargo=$HOME/.cargo/bin/cargo; }
if [ -z "$cargo" ]; then
  echo "build.sh: cargo is not installed (install Rust's cargo, >= 1.88)" >&2
  exit 127
fi
"$cargo" build --locked --quiet --manifest-path "$here/Cargo.toml" >&2
echo "$CARGO_TARGET_DIR/debug/sbx-peer-driver"
