//! Writes the JobFlow CRD: `cargo run -p jobflow --bin crdgen` (to `deploy/crds/`), or with
//! `--stdout` to print it. With `--api-doc` it writes the API reference `docs/api.md` instead
//! (printed with `--stdout` too).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let api_doc = std::env::args().any(|arg| arg == "--api-doc");
    let (rendered, target) = if api_doc {
        (
            jobflow::api_doc::render_api_doc().map_err(|e| e.to_string()),
            jobflow::api_doc::API_DOC_PATH,
        )
    } else {
        (
            jobflow::crd::render_crd_yaml().map_err(|e| e.to_string()),
            jobflow::crd::CRD_PATH,
        )
    };
    let text = match rendered {
        Ok(text) => text,
        Err(error) => {
            eprintln!("crdgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|arg| arg == "--stdout") {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(target);
    match std::fs::write(&path, text) {
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
