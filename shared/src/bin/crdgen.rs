//! Writes the JobFlow CRD: `cargo run -p jobflow --bin crdgen` (to `deploy/crds/`), or with
//! `--stdout` to print it.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match jobflow::crd::render_crd_yaml() {
        Ok(yaml) => yaml,
        Err(error) => {
            eprintln!("crdgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|arg| arg == "--stdout") {
        print!("{yaml}");
        return ExitCode::SUCCESS;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(jobflow::crd::CRD_PATH);
    match std::fs::write(&path, yaml) {
        Ok(()) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crdgen: writing {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}
