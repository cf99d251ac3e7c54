//! Generates the gRPC server code from the project's own proto file with a pure-Rust proto
//! compiler (protox), so building needs no system `protoc`.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let proto_dir = manifest.join("../../pytest_sandbox_conformance/grpc");
    let proto = proto_dir.join("compute_driver.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&proto_dir])
        .unwrap_or_else(|err| panic!("compile {}: {err:?}", proto.display()));
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(fds)
        .unwrap_or_else(|err| panic!("generate code from {}: {err}", proto.display()));
}
