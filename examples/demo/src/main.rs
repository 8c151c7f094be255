//! `keybound-demo`: serves the demo web app and API. Settings come from the same
//! `KEYBOUND_*` variables as every keybound example (`keybound_server::settings`); the
//! flags below override them. Sessions live in a SQLite file in the data directory by
//! default, next to the key file holding the server's signing key and refresh secret,
//! so sessions survive restarts.
//!
//! DBSC mode: with `KEYBOUND_DBSC=on` and HTTPS (`KEYBOUND_TLS_CERT`, `KEYBOUND_TLS_KEY`:
//! PEM files), a sign-in without the SDK's DPoP key starts a session bound by the
//! browser's own key (Device Bound Session Credentials) and served by a short-lived
//! bound cookie; the SDK's DPoP sign-in keeps working beside it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use keybound_demo::Demo;
use keybound_server::axum::{DbscOptions, Keybound};
use keybound_server::lifecycle::{BroadcastSink, TracingSink};
use keybound_server::settings::{self, Settings, StoreSpec};
use keybound_server::tls::TlsFiles;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;
use zeroize::Zeroizing;

const DEFAULT_DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
/// keybound's default refresh grace (`Policy::default`).
const DEFAULT_REFRESH_GRACE_SECS: u64 = 30;
const DEFAULT_WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist");

/// The keybound demo: device-bound browser sessions, end to end.
#[derive(Parser, Debug)]
#[command(
    name = "keybound-demo",
    version,
    after_help = "Settings: every KEYBOUND_* variable of keybound_server::settings \
(docs/server.md, Settings), e.g. KEYBOUND_LISTEN, KEYBOUND_PUBLIC_ORIGIN, \
KEYBOUND_ACCESS_TTL_SECS, KEYBOUND_STORE, KEYBOUND_KEY_FILE, KEYBOUND_DBSC. KEYBOUND_TLS_CERT, KEYBOUND_TLS_KEY: \
PEM certificate chain and private key; with both the demo serves HTTPS (DBSC needs it). \
KEYBOUND_DEMO_ADMIN_TOKEN: token for the operator routes (/metrics, /api/admin/...); \
without it they answer loopback callers only. RUST_LOG: log filter (default info)."
)]
struct Cli {
    /// Directory of the SQLite session store (sessions.db) and the key file
    /// (keys.json); created on first run.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Session store; overrides KEYBOUND_STORE. Default: sqlite in the data directory.
    #[arg(long, value_enum)]
    store: Option<StoreKind>,
    /// Address to listen on; overrides KEYBOUND_LISTEN (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Origin browsers reach the demo at; overrides KEYBOUND_PUBLIC_ORIGIN.
    #[arg(long, value_name = "URL")]
    public_origin: Option<String>,
    /// The built web app.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_WEB_DIR)]
    web_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// A SQLite file in the data directory: sessions survive restarts.
    Sqlite,
    /// This process's memory: everything is gone when it stops.
    Memory,
}

/// The `KEYBOUND_*` variables as the demo sees them: flags first, then the environment,
/// then the demo's defaults (SQLite and a key file in the data directory).
fn settings_lookup(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = settings::VARIABLES
        .into_iter()
        .filter_map(|name| {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name.to_owned(), v))
        })
        .collect();
    if let Some(listen) = &cli.listen {
        vars.insert("KEYBOUND_LISTEN".into(), listen.clone());
    }
    if let Some(origin) = &cli.public_origin {
        vars.insert("KEYBOUND_PUBLIC_ORIGIN".into(), origin.clone());
    }
    let sqlite = format!("sqlite:{}", cli.data_dir.join("sessions.db").display());
    match cli.store {
        Some(StoreKind::Memory) => {
            vars.insert("KEYBOUND_STORE".into(), "memory".into());
        }
        Some(StoreKind::Sqlite) => {
            vars.insert("KEYBOUND_STORE".into(), sqlite);
        }
        None => {
            vars.entry("KEYBOUND_STORE".into()).or_insert(sqlite);
        }
    }
    // keybound wants the refresh grace below the access-token lifetime; a short lifetime
    // given alone (to watch expiry quickly) gets a quarter of it as grace.
    if !vars.contains_key("KEYBOUND_REFRESH_GRACE_SECS") {
        let ttl = vars
            .get("KEYBOUND_ACCESS_TTL_SECS")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(ttl) = ttl.filter(|ttl| (1..=DEFAULT_REFRESH_GRACE_SECS).contains(ttl)) {
            vars.insert(
                "KEYBOUND_REFRESH_GRACE_SECS".into(),
                (ttl / 4).max(1).to_string(),
            );
        }
    }
    // A store that outlives the process needs the keys that signed its tokens.
    if vars.get("KEYBOUND_STORE").is_some_and(|s| s != "memory") {
        let key_file = cli.data_dir.join("keys.json").display().to_string();
        vars.entry("KEYBOUND_KEY_FILE".into()).or_insert(key_file);
    }
    vars
}

/// Creates `dir` (and its parents) readable by the owner only, if it is missing.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// How the store is shown: in the console (with its path) and to the app (without).
fn store_labels(store: &StoreSpec) -> (String, &'static str) {
    match store {
        StoreSpec::Memory => ("memory".to_owned(), "memory (gone when the server stops)"),
        StoreSpec::Sqlite(path) => (
            format!("sqlite {}", path.display()),
            "SQLite file (survives restarts)",
        ),
        _ => ("other".to_owned(), "other"),
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let mut vars = settings_lookup(&cli, |name| std::env::var(name).ok());
    let tls = TlsFiles::from_env()
        .and_then(|files| files.map(|f| f.server_config()).transpose())
        .unwrap_or_else(|err| fail(&err));
    if tls.is_some() && !vars.contains_key("KEYBOUND_PUBLIC_ORIGIN") {
        let listen = vars
            .get("KEYBOUND_LISTEN")
            .map_or("127.0.0.1:8080", String::as_str);
        let origin = format!("https://{listen}");
        vars.insert("KEYBOUND_PUBLIC_ORIGIN".into(), origin);
    }
    let settings = match Settings::from_lookup(|name| vars.get(name).cloned()) {
        Ok(settings) => settings,
        Err(err) => fail(&err),
    };
    if settings.dbsc && tls.is_none() {
        tracing::warn!(
            "KEYBOUND_DBSC=on without HTTPS: browsers run DBSC only over HTTPS \
             (set KEYBOUND_TLS_CERT and KEYBOUND_TLS_KEY)"
        );
    }
    let dbsc = settings.dbsc.then(|| DbscOptions {
        unbound_cookie: settings.dbsc_unbound_cookie,
        ..DbscOptions::default()
    });
    let dirs = [
        match &settings.store {
            StoreSpec::Sqlite(path) => path.parent().map(Path::to_owned),
            _ => None,
        },
        settings
            .key_file
            .as_ref()
            .and_then(|f| f.parent().map(Path::to_owned)),
    ];
    for dir in dirs.into_iter().flatten() {
        if let Err(err) = create_private_dir(&dir) {
            fail(&format!("cannot create {}: {err}", dir.display()));
        }
    }

    let metrics = match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                loop {
                    every.tick().await;
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        }
        Err(err) => {
            tracing::warn!("metrics are off: {err}");
            None
        }
    };

    let listen = settings.listen;
    let origin = settings.public_origin.clone();
    let (label, app_label) = store_labels(&settings.store);
    let key_file = settings.key_file.clone();
    let login_limits = settings.login_limits.clone();
    let audit = BroadcastSink::new(1024);
    let sink = audit.clone();
    let running = match Keybound::setup(settings)
        .configure_service(move |service| service.audit_sink(sink).audit_sink(TracingSink))
        .build()
        .await
    {
        Ok(running) => running,
        Err(err) => fail(&err),
    };

    let (stop, stopped) = watch::channel(false);
    let admin_token = std::env::var("KEYBOUND_DEMO_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(Zeroizing::new);
    let admin_mode = if admin_token.is_some() {
        "bearer token (KEYBOUND_DEMO_ADMIN_TOKEN)"
    } else {
        "loopback callers only"
    };
    let kb = match dbsc {
        Some(options) => running.keybound.clone().with_dbsc(options, "/session"),
        None => running.keybound.clone(),
    };
    let dbsc_mode = if kb.dbsc_enabled() {
        "on (sign in without the SDK's key: the browser's own DBSC key)"
    } else {
        "off (KEYBOUND_DBSC=on with HTTPS turns it on)"
    };
    let mut demo = Demo::new(kb, audit)
        .web_dir(&cli.web_dir)
        .admin_token(admin_token)
        .store_label(app_label)
        .login_limits(login_limits)
        .shutdown(stopped);
    if let Some(handle) = metrics {
        demo = demo.metrics(handle);
    }
    let app = demo.router();

    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => fail(&format!(
            "cannot listen on {listen}: {err} (set KEYBOUND_LISTEN or --listen)"
        )),
    };
    if !cli.web_dir.join("index.html").is_file() {
        tracing::warn!(
            "no web app in {}: build it with scripts/demo.sh",
            cli.web_dir.display()
        );
    }
    println!("sessions: {label}");
    if let Some(key_file) = &key_file {
        println!("server key: {}", key_file.display());
    }
    println!("operator routes (/metrics, /api/admin/...): {admin_mode}");
    println!("DBSC: {dbsc_mode}");
    println!("demo users: alice / wonderland, bob / builder");
    println!("keybound demo ready at {origin}");

    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = match tls {
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    shutdown_signal().await;
                    let _ = stop.send(true);
                })
                .await
        }
        Some(config) => {
            let listener = listener.into_std().unwrap_or_else(|err| fail(&err));
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            let handle = axum_server::Handle::new();
            let stopping = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
                stopping.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, config)
                .unwrap_or_else(|err| fail(&err))
                .handle(handle)
                .serve(service)
                .await
        }
    };
    if let Err(err) = served {
        fail(&err);
    }
    running.sweeper.stop().await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

fn fail(err: &dyn std::fmt::Display) -> ! {
    eprintln!("keybound-demo: {err}");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut argv = vec!["keybound-demo", "--data-dir", "/d"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn sqlite_and_key_file_in_the_data_dir_by_default() {
        let vars = settings_lookup(&cli(&[]), env(&[]));
        assert_eq!(vars["KEYBOUND_STORE"], "sqlite:/d/sessions.db");
        assert_eq!(vars["KEYBOUND_KEY_FILE"], "/d/keys.json");
    }

    #[test]
    fn memory_store_keeps_nothing_on_disk() {
        let vars = settings_lookup(&cli(&["--store", "memory"]), env(&[]));
        assert_eq!(vars["KEYBOUND_STORE"], "memory");
        assert!(!vars.contains_key("KEYBOUND_KEY_FILE"));
        let vars = settings_lookup(&cli(&[]), env(&[("KEYBOUND_STORE", "memory")]));
        assert_eq!(vars["KEYBOUND_STORE"], "memory");
    }

    #[test]
    fn a_short_access_token_lifetime_gets_a_shorter_grace() {
        for (ttl, grace) in [
            ("20", Some("5")),
            ("2", Some("1")),
            ("30", Some("7")),
            ("31", None),
            ("300", None),
        ] {
            let vars = settings_lookup(&cli(&[]), env(&[("KEYBOUND_ACCESS_TTL_SECS", ttl)]));
            assert_eq!(
                vars.get("KEYBOUND_REFRESH_GRACE_SECS").map(String::as_str),
                grace,
                "{ttl}"
            );
        }
        let vars = settings_lookup(
            &cli(&[]),
            env(&[
                ("KEYBOUND_ACCESS_TTL_SECS", "20"),
                ("KEYBOUND_IDLE_TIMEOUT_SECS", "60"),
            ]),
        );
        Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
        // An explicit grace is the user's choice, even a refused one.
        let vars = settings_lookup(
            &cli(&[]),
            env(&[
                ("KEYBOUND_ACCESS_TTL_SECS", "20"),
                ("KEYBOUND_REFRESH_GRACE_SECS", "25"),
            ]),
        );
        assert_eq!(vars["KEYBOUND_REFRESH_GRACE_SECS"], "25");
        assert!(Settings::from_lookup(|name| vars.get(name).cloned()).is_err());
    }

    #[test]
    fn flags_override_the_environment() {
        let vars = settings_lookup(
            &cli(&["--store", "sqlite", "--listen", "127.0.0.1:9999"]),
            env(&[
                ("KEYBOUND_STORE", "memory"),
                ("KEYBOUND_LISTEN", "127.0.0.1:1234"),
                ("KEYBOUND_IDLE_TIMEOUT_SECS", "600"),
                ("KEYBOUND_KEY_FILE", "/k.json"),
            ]),
        );
        assert_eq!(vars["KEYBOUND_STORE"], "sqlite:/d/sessions.db");
        assert_eq!(vars["KEYBOUND_LISTEN"], "127.0.0.1:9999");
        assert_eq!(vars["KEYBOUND_IDLE_TIMEOUT_SECS"], "600");
        assert_eq!(vars["KEYBOUND_KEY_FILE"], "/k.json");
        let settings = Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
        assert_eq!(settings.public_origin, "http://127.0.0.1:9999");
        assert_eq!(settings.store, StoreSpec::Sqlite("/d/sessions.db".into()));
    }
}
