//! Compiles `proto/` into Rust with tonic-build, using the protoc binary vendored
//! by the `protoc-bin-vendored` crate so the build needs no system protoc.

// Setting PROTOC with `set_var` is `unsafe` in edition 2024; a build script is
// single-threaded, which is what makes it sound here.
#![allow(unsafe_code)]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known_types = protoc_bin_vendored::include_path()?;
    let include_dir = well_known_types
        .to_str()
        .ok_or("the vendored protoc include path is not UTF-8")?;
    // SAFETY: no other thread exists yet to read the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let protos = [
        "proto/switchyard/v1/record.proto",
        "proto/switchyard/v1/plugin.proto",
        "proto/switchyard/v1/input.proto",
        "proto/switchyard/v1/enrich.proto",
        "proto/switchyard/v1/output.proto",
        "proto/plugin/grpc_controller.proto",
        "proto/plugin/grpc_stdio.proto",
        "proto/plugin/grpc_broker.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        // A record's metadata is a BTreeMap on both sides (the hub's domain
        // record and the SDK's record): generating one too makes every
        // conversion a move, and decoding a small map needs no hashing.
        .btree_map(".switchyard.v1.Record.metadata")
        .build_client(true)
        .build_server(true)
        .compile_protos(&protos, &["proto", include_dir])?;
    Ok(())
}
