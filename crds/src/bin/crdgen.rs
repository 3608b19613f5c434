//! Writes the StreamRoom CustomResourceDefinition as YAML to stdout, or to the files given as
//! arguments (`crds/streamroom.yaml` and the chart's copy).

use std::{fs, process::ExitCode};

fn main() -> ExitCode {
    let yaml = match roomcast_crds::crd_yaml() {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRD: {e}");
            return ExitCode::FAILURE;
        }
    };
    let targets: Vec<String> = std::env::args().skip(1).collect();
    if targets.is_empty() {
        print!("{yaml}");
    }
    for target in targets {
        if let Err(e) = fs::write(&target, &yaml) {
            eprintln!("crdgen: cannot write {target}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
