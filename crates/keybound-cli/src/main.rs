//! The `keybound` command-line tool; the commands live in the library
//! ([`keybound_cli`]).

fn main() -> std::process::ExitCode {
    keybound_cli::main()
}
