//! `switchyard`: the hub binary. All logic lives in the library
//! (`switchyard_hub::cli`).

fn main() -> std::process::ExitCode {
    switchyard_hub::cli::main()
}
