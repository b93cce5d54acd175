//! Compiles the .proto files with protox (pure Rust, no system protoc) and
//! generates prost messages and tonic services, plus a descriptor set for
//! gRPC reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tallytree/v1/envelope.proto",
        "proto/tallytree/v1/statements.proto",
        "proto/tallytree/v1/records.proto",
        "proto/tallytree/v1/intake.proto",
        "proto/tallytree/v1/federation.proto",
        "proto/tallytree/v1/enrolment.proto",
        "proto/tallytree/v1/query.proto",
        "proto/tallytree/v1/evidence.proto",
        "proto/tallytree/v1/audit.proto",
        "proto/tallytree/v1/node.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("tallytree_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
