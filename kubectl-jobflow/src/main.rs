//! `kubectl jobflow`: the kubectl plugin for JobFlows (all of it lives in the library).

fn main() -> std::process::ExitCode {
    kubectl_jobflow::main_with_args(std::env::args_os())
}
