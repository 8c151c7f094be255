//! A private `redis-server` for one test: started on a free loopback port in a
//! temporary directory, killed when dropped. Include with
//! `#[path = "common/redis_server.rs"] mod redis_server;`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Persistence of a test server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing written to disk (`--save "" --appendonly no`).
    None,
    /// Every write is in the append-only file before Redis answers
    /// (`--appendonly yes --appendfsync always`), as `docs/redis.md` recommends.
    AppendOnlyAlways,
}

/// Certificate files for a TLS port.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// A running `redis-server` owned by the test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls: Option<(u16, TlsFiles)>,
    dir: tempfile::TempDir,
    persistence: Persistence,
}

/// Where `redis-server` is: `$KEYBOUND_REDIS_SERVER`, `/usr/bin/redis-server`, or the
/// `PATH`. A missing binary fails the test: these tests never pass silently.
fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("KEYBOUND_REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let default = Path::new("/usr/bin/redis-server");
    if default.exists() {
        return default.to_owned();
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("redis-server");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!(
        "redis-server is not installed: the Redis tests need it. Run scripts/setup.sh \
         (or set KEYBOUND_REDIS_SERVER to its path)."
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().unwrap().port()
}

/// Whether a Redis answers `PING` on `port`.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl RedisServer {
    /// A server without persistence.
    pub fn start() -> Self {
        Self::start_with(Persistence::None)
    }

    /// A server without persistence that also serves TLS (`tls_url`) with `files`.
    pub fn start_tls(files: TlsFiles) -> Self {
        Self::start_inner(Persistence::None, Some(files))
    }

    /// A server with the given persistence.
    pub fn start_with(persistence: Persistence) -> Self {
        Self::start_inner(persistence, None)
    }

    fn start_inner(persistence: Persistence, tls: Option<TlsFiles>) -> Self {
        let mut server = Self {
            child: None,
            port: 0,
            tls: tls.map(|files| (0, files)),
            dir: tempfile::tempdir().expect("a temporary directory"),
            persistence,
        };
        for _ in 0..5 {
            // Someone may take the port between our probe and Redis's bind: then
            // another one is tried.
            server.port = free_port();
            if let Some((port, _)) = &mut server.tls {
                *port = free_port();
            }
            if server.spawn() {
                return server;
            }
        }
        panic!(
            "redis-server did not start: {}",
            std::fs::read_to_string(server.dir.path().join("redis.log")).unwrap_or_default()
        );
    }

    /// Starts the process on `self.port`; whether it answers within 5 s.
    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let mut command = Command::new(binary());
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--maxmemory-policy", "noeviction"]);
        if let Some((port, files)) = &self.tls {
            command
                .arg("--tls-port")
                .arg(port.to_string())
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", "no"]);
        }
        match self.persistence {
            Persistence::None => {
                command.args(["--appendonly", "no"]);
            }
            Persistence::AppendOnlyAlways => {
                command.args(["--appendonly", "yes", "--appendfsync", "always"]);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}; run scripts/setup.sh"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if answers(self.port) {
                return true;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    /// The URL of the server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TLS URL of a server started with [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("a TLS server");
        format!("rediss://127.0.0.1:{port}/")
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (`SIGKILL`: no shutdown, no final save) and waits
    /// until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (so with
    /// [`Persistence::AppendOnlyAlways`] it reloads what it had written).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not restart on port {}: {}",
            self.port,
            std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
        );
    }

    /// Runs one command with `redis-cli`-like framing on a fresh connection and
    /// returns the raw reply (for test set-up and inspection).
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port))).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = stream.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One server shared by the tests of this binary that are running at the same time
/// (each uses its own key prefix); killed when the last of them finishes.
pub fn shared() -> std::sync::Arc<RedisServer> {
    use std::sync::{Arc, Mutex, PoisonError, Weak};
    static SHARED: Mutex<Weak<RedisServer>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(RedisServer::start());
    *slot = Arc::downgrade(&server);
    server
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("kbtest:{hex}:")
}
