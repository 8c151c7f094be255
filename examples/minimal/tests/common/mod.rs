//! What the black-box tests of `keybound-minimal` share: running the binary with a
//! clean set of `KEYBOUND_*` variables, waiting for it to stop or to listen, and the
//! `keybound` CLI (`$KEYBOUND_BIN`, or `keybound` next to the binary, built on demand
//! with `cargo build -p keybound-cli` when missing).
#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keybound_server::settings;

pub const MINIMAL: &str = env!("CARGO_BIN_EXE_keybound-minimal");

/// The variables besides the settings' own (`keybound_server::settings::VARIABLES`)
/// that could change what the binary does.
const OTHER_VARIABLES: [&str; 3] = ["KEYBOUND_TLS_CERT", "KEYBOUND_TLS_KEY", "RUST_LOG"];

/// The `keybound` CLI.
pub fn cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        if let Some(bin) = std::env::var_os("KEYBOUND_BIN") {
            return PathBuf::from(bin);
        }
        let bin =
            Path::new(MINIMAL).with_file_name(format!("keybound{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "keybound-cli"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p keybound-cli failed");
        }
        assert!(bin.exists(), "no keybound CLI at {}", bin.display());
        bin
    })
}

/// Runs `keybound ARGS…` and returns its trimmed standard output.
pub fn keybound(args: &[&str]) -> String {
    let out = Command::new(cli()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "keybound {}: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with exactly the variables `env`.
pub fn command<V: AsRef<OsStr>>(env: &[(&str, V)]) -> Command {
    let mut command = Command::new(MINIMAL);
    // Removed, so only what a test sets applies.
    for name in settings::VARIABLES.into_iter().chain(OTHER_VARIABLES) {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the binary expecting it to stop on its own within 20 s.
pub fn run_to_exit<V: AsRef<OsStr> + std::fmt::Debug>(env: &[(&str, V)]) -> Output {
    let mut child = command(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("keybound-minimal did not stop with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A running `keybound-minimal`, stopped when dropped.
pub struct Server {
    child: Child,
    /// The origin it said it listens on (`http://…` or `https://…`).
    pub origin: String,
}

impl Server {
    /// Starts the binary on `127.0.0.1:port` with `env` and waits until it listens.
    pub fn start<V: AsRef<OsStr>>(port: u16, env: &[(&str, V)]) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let mut child = command(env)
            .env("KEYBOUND_LISTEN", &listen)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                panic!("keybound-minimal did not start: {stderr}");
            });
        let origin = line
            .strip_prefix("keybound minimal example listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        assert!(origin.ends_with(&listen), "{origin}");
        Self { child, origin }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
