//! Compiles KEDA's `externalscaler.proto` with a vendored `protoc`, so a fresh machine with no
//! protoc installed builds the crate, and emits the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { env::set_var("PROTOC", protoc) };
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("externalscaler_descriptor.bin"))
        .compile_protos(&["proto/externalscaler.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/externalscaler.proto");
    Ok(())
}
