//! The documented metrics are recorded through the `metrics` facade.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{harness, jkt};
use keybound_server::lifecycle::{Actor, OpenRequest, Reason, RequestSignals, metrics as names};
use keybound_server::store::MemoryStore;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

type Values = Arc<Mutex<BTreeMap<String, f64>>>;

/// Records every metric's latest value (counters summed) under `name{label=value,…}`.
#[derive(Default)]
struct Capture(Values);

struct Handle(String, Values);

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value as f64;
    }
    fn absolute(&self, value: u64) {
        self.1.lock().unwrap().insert(self.0.clone(), value as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }
    fn decrement(&self, value: f64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() -= value;
    }
    fn set(&self, value: f64) {
        self.1.lock().unwrap().insert(self.0.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, _value: f64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += 1.0;
    }
}

impl Capture {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        Arc::new(Handle(name, Arc::clone(&self.0)))
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

#[test]
fn lifecycle_metrics_are_recorded_under_their_documented_names() {
    let capture = Capture::default();
    let values = Arc::clone(&capture.0);
    metrics::with_local_recorder(&capture, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let h = harness(MemoryStore::new());
            let s = &h.service;
            let signals = RequestSignals::new();
            let a = s
                .open_session("alice", &jkt(1), OpenRequest::new())
                .await
                .unwrap();
            let a1 = s
                .refresh(&a.refresh_token, &jkt(1), &signals)
                .await
                .unwrap();
            s.refresh(&a.refresh_token, &jkt(1), &signals)
                .await
                .unwrap();
            s.refresh(&a1.refresh_token, &jkt(2), &signals)
                .await
                .unwrap_err();
            s.refresh("garbage", &jkt(1), &signals).await.unwrap_err();
            h.advance(60);
            s.refresh(&a.refresh_token, &jkt(1), &signals)
                .await
                .unwrap_err();
            s.refresh(&a1.refresh_token, &jkt(1), &signals)
                .await
                .unwrap_err();
            let b = s
                .open_session("bob", &jkt(3), OpenRequest::new())
                .await
                .unwrap();
            s.revoke(&b.session_id, Reason::ADMIN_REVOKED, Actor::System)
                .await
                .unwrap();
            let c = s
                .open_session("carol", &jkt(4), OpenRequest::new())
                .await
                .unwrap();
            s.close(&c.session_id).await.unwrap();
            s.open_session("dave", &jkt(5), OpenRequest::new())
                .await
                .unwrap();
            s.open_session("erin", &jkt(6), OpenRequest::new())
                .await
                .unwrap();
            h.advance(3600);
            s.open_session("frank", &jkt(7), OpenRequest::new())
                .await
                .unwrap();
            h.advance(7 * 24 * 3600 - 1000);
            s.sweep_once().await.unwrap();
        });
    });
    let values = values.lock().unwrap().clone();
    let get = |k: &str| {
        values
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing in {values:#?}"))
    };
    assert_eq!(get(names::SESSIONS_OPENED), 6.0);
    assert_eq!(get("keybound_refreshes_total{result=rotated}"), 1.0);
    assert_eq!(get("keybound_refreshes_total{result=grace_replay}"), 1.0);
    assert_eq!(get("keybound_refreshes_total{result=key_mismatch}"), 1.0);
    assert_eq!(get("keybound_refreshes_total{result=invalid}"), 1.0);
    assert_eq!(get("keybound_refreshes_total{result=reuse_detected}"), 1.0);
    assert_eq!(get("keybound_refreshes_total{result=not_active}"), 1.0);
    assert_eq!(get("keybound_revocations_total{reason=refresh_reuse}"), 1.0);
    assert_eq!(get("keybound_revocations_total{reason=admin_revoked}"), 1.0);
    assert_eq!(get(names::SESSIONS_CLOSED), 1.0);
    assert_eq!(
        get("keybound_sessions_expired_total{reason=idle_timeout}"),
        3.0
    );
    // alice, bob, carol ended at T0+60; dave and erin expired at T0+1860; the cut-off
    // is T0+2660, so frank (expired at T0+5460) stays.
    assert_eq!(get(names::SESSIONS_PURGED), 5.0);
    assert_eq!(get("keybound_sweeps_total{result=ok}"), 1.0);
    assert_eq!(get(names::SWEEP_DURATION), 1.0);
    assert_eq!(get(names::ACTIVE_SESSIONS), 0.0);
}
