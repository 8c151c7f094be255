//! `keybound`: keys, JWK thumbprints, DPoP proofs, access tokens and their verification
//! from the command line, for wiring DPoP by hand and as a black-box test interface.
//!
//! Exit codes: 0 success; 1 `verify` rejected the credentials (the JSON error body is
//! on stdout); 2 bad input or usage (one line on stderr).
//!
//! The binary is [`main`]; [`run`] runs the same command line in-process with its
//! output going to writers (for tests and fuzzing).

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser as _;

mod args;
mod commands;
mod device;
mod error;
mod input;
mod verify;

use args::Cli;
use error::CliError;

/// How a command that ran to completion ended.
enum Outcome {
    /// Done; exit 0.
    Done,
    /// `verify` rejected the request; exit 1.
    Rejected,
}

/// The `keybound` binary: arguments from the process, output on standard output,
/// messages on standard error. Usage errors and `--help` are printed by clap (in
/// colour on a terminal).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = execute(
        cli,
        &mut Output {
            out: &mut io::stdout().lock(),
            err: &mut io::stderr(),
        },
    );
    ExitCode::from(code)
}

/// Runs the `keybound` command line in-process: `args` as a process receives them
/// (the program name first), output to `stdout`, messages to `stderr`. Returns the
/// exit code: 0 success (also `--help` and `--version`), 1 `verify` rejected the
/// request, 2 bad input or usage.
///
/// Everything else is as in the binary: `@FILE` arguments read files, `@-` reads the
/// process's standard input and `keygen --out` writes a file.
///
/// ```
/// let mut out = Vec::new();
/// let mut err = Vec::new();
/// let code = keybound_cli::run(["keybound", "inspect", "not-a-jwt"], &mut out, &mut err);
/// assert_eq!(code, 2);
/// assert!(String::from_utf8_lossy(&err).starts_with("keybound: error: JWT"));
/// ```
pub fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => execute(
            cli,
            &mut Output {
                out: stdout,
                err: stderr,
            },
        ),
        Err(err) => {
            let to: &mut dyn Write = if err.use_stderr() { stderr } else { stdout };
            let _ = write!(to, "{}", err.render());
            u8::try_from(err.exit_code()).unwrap_or(2)
        }
    }
}

/// Runs a parsed command line; the exit code.
fn execute(cli: Cli, output: &mut Output<'_>) -> u8 {
    match commands::execute(cli.command, output) {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Rejected) => 1,
        Err(err) => {
            let _ = writeln!(output.err, "keybound: error: {err}");
            2
        }
    }
}

/// Where a command writes: its output and its messages for the human.
struct Output<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Output<'_> {
    /// Prints one line of output. A closed pipe (`keybound … | head -c 10`) is not an
    /// error.
    fn emit(&mut self, text: &str) -> Result<(), CliError> {
        match writeln!(self.out, "{text}").and_then(|()| self.out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(source) => Err(CliError::Write {
                path: "standard output".into(),
                source,
            }),
        }
    }

    /// A message for the human at the terminal, on standard error.
    fn note(&mut self, message: &str) {
        let _ = writeln!(self.err, "keybound: {message}");
    }
}
