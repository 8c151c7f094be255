//! The verifier's metrics: one `keybound_verifications_total` increment per request,
//! labelled with the result code, plus the time histogram and the replay-store gauge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use ed25519_dalek::SigningKey;
use keybound_proto::{AccessTokenClaims, ProofBuilder, Signer};
use keybound_server::{
    KeyRing, METRIC_REPLAY_ENTRIES, METRIC_VERIFICATION_SECONDS, METRIC_VERIFICATIONS, ManualClock,
    ServerKey, Verifier,
};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Everything recorded: (metric name, labels, value).
type Events = Arc<Mutex<Vec<(String, Vec<(String, String)>, f64)>>>;

#[derive(Default)]
struct Capture(Events);

struct Handle(Events, String, Vec<(String, String)>);

impl Handle {
    fn push(&self, value: f64) {
        self.0
            .lock()
            .unwrap()
            .push((self.1.clone(), self.2.clone(), value));
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.push(value);
    }
    fn decrement(&self, value: f64) {
        self.push(-value);
    }
    fn set(&self, value: f64) {
        self.push(value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl Capture {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        Arc::new(Handle(self.0.clone(), key.name().to_owned(), labels))
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

/// Polls a future that completes without waiting.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the verifier waited on a memory store"),
    }
}

#[test]
fn verifications_are_counted_by_result() {
    const T0: i64 = 1_700_000_000;
    let device = SigningKey::from_bytes(&[2u8; 32]);
    let keys = KeyRing::new(ServerKey::from_seed(&[1u8; 32]));
    let token = keys
        .sign(&AccessTokenClaims {
            iss: "https://api.example.com".into(),
            sub: "alice".into(),
            sid: "s1".into(),
            jti: "t1".into(),
            iat: T0,
            exp: T0 + 300,
            jkt: device.public_jwk().thumbprint(),
        })
        .unwrap();
    let verifier = Verifier::builder()
        .public_origin("https://api.example.com")
        .keys(keys)
        .clock(Arc::new(ManualClock::new(T0 * 1000)))
        .danger_accept_any_session()
        .build()
        .unwrap();
    let proof = ProofBuilder::new(
        device.public_jwk(),
        "GET",
        "https://api.example.com/me",
        T0,
        [7u8; 16],
    )
    .unwrap()
    .access_token(&token)
    .sign(&device)
    .unwrap();
    let request = http::Request::get("/me")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(())
        .unwrap()
        .into_parts()
        .0;

    let capture = Capture::default();
    let events = capture.0.clone();
    metrics::with_local_recorder(&capture, || {
        keybound_server::describe_metrics();
        ready(verifier.verify(&request)).unwrap();
        ready(verifier.verify(&request)).unwrap_err();
    });

    let events = events.lock().unwrap();
    let results: Vec<&str> = events
        .iter()
        .filter(|(name, _, _)| name == METRIC_VERIFICATIONS)
        .map(|(_, labels, value)| {
            assert_eq!(*value, 1.0);
            assert_eq!(labels.len(), 1);
            assert_eq!(labels[0].0, "result");
            labels[0].1.as_str()
        })
        .collect();
    assert_eq!(results, ["ok", "replayed_jti"]);
    let timings = events
        .iter()
        .filter(|(name, _, value)| name == METRIC_VERIFICATION_SECONDS && *value >= 0.0)
        .count();
    assert_eq!(timings, 2);
    let gauge: Vec<f64> = events
        .iter()
        .filter(|(name, _, _)| name == METRIC_REPLAY_ENTRIES)
        .map(|(_, _, value)| *value)
        .collect();
    assert_eq!(gauge, [1.0, 1.0]);
}
