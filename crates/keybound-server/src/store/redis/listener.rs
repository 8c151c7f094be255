//! The invalidation listener: subscribes to `{prefix}events` and drops each session a
//! notice names from this node's session cache, suspending the cache whenever the
//! subscription is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{RedisOptions, SessionCacheControl, StoreError};
use crate::session::SessionId;

/// Gauge: 1 while the node's invalidation listener is subscribed, 0 otherwise.
pub const METRIC_SUBSCRIBED: &str = "keybound_redis_subscribed";
/// Counter: invalidation notices received from Redis.
pub const METRIC_INVALIDATIONS: &str = "keybound_redis_invalidations_total";

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Status {
    subscribed: AtomicBool,
    notices: AtomicU64,
    subscriptions: AtomicU64,
    changed: Notify,
}

/// The running invalidation listener of one node, made by
/// [`RedisStore::spawn_invalidation_listener`](super::RedisStore::spawn_invalidation_listener).
///
/// Keep it as long as the service serves requests: dropping it (or
/// [`stop`](Self::stop)) ends the subscription and leaves the service's session
/// cache suspended, so the node stays correct, only slower.
pub struct InvalidationListener {
    status: Arc<Status>,
    cache: Arc<dyn SessionCacheControl>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for InvalidationListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidationListener")
            .field("subscribed", &self.is_subscribed())
            .field("notices", &self.notices())
            .finish_non_exhaustive()
    }
}

impl InvalidationListener {
    pub(super) fn spawn(
        client: redis::Client,
        options: RedisOptions,
        cache: Arc<dyn SessionCacheControl>,
    ) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::Backend {
            reason: "the invalidation listener needs a tokio runtime".into(),
        })?;
        // Until the first subscription is confirmed, nothing may come from the cache.
        cache.suspend();
        let status = Arc::new(Status::default());
        let (stop, stopped) = oneshot::channel();
        let task = runtime.spawn(run(
            client,
            options,
            Arc::clone(&cache),
            Arc::clone(&status),
            stopped,
        ));
        Ok(Self {
            status,
            cache,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Whether the listener is subscribed now (the service's cache is in use).
    pub fn is_subscribed(&self) -> bool {
        self.status.subscribed.load(Ordering::Acquire)
    }

    /// How many notices it has received.
    pub fn notices(&self) -> u64 {
        self.status.notices.load(Ordering::Relaxed)
    }

    /// How many times it has subscribed (1 + the number of resubscriptions).
    pub fn subscriptions(&self) -> u64 {
        self.status.subscriptions.load(Ordering::Relaxed)
    }

    /// Waits until the listener is subscribed, at most `timeout`; returns whether it
    /// is. Useful at start-up and in tests.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.status.changed.notified();
                if self.is_subscribed() {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Ends the subscription and waits for the task; the cache stays suspended.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for InvalidationListener {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        self.cache.suspend();
        metrics::gauge!(METRIC_SUBSCRIBED).set(0.0);
    }
}

/// What ended one subscription.
enum Ended {
    Stopped,
    Lost(String),
}

async fn run(
    client: redis::Client,
    options: RedisOptions,
    cache: Arc<dyn SessionCacheControl>,
    status: Arc<Status>,
    mut stopped: oneshot::Receiver<()>,
) {
    let channel = options.channel();
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u64;
    loop {
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<PubSub, redis::RedisError>(pubsub)
        };
        let ended = match tokio::time::timeout(options.timeout, subscribe).await {
            Ok(Ok(pubsub)) => {
                backoff = FIRST_BACKOFF;
                if failures > 0 {
                    tracing::info!(target: "keybound::redis", "invalidation listener subscribed again");
                }
                failures = 0;
                // Notices published while unsubscribed were missed: the cache was
                // suspended (and emptied) all along, and starts empty again.
                cache.resume();
                status.subscriptions.fetch_add(1, Ordering::Relaxed);
                set_subscribed(&status, true);
                let ended = listen(pubsub, &options, &*cache, &status, &mut stopped).await;
                set_subscribed(&status, false);
                cache.suspend();
                ended
            }
            Ok(Err(e)) => Ended::Lost(e.to_string()),
            Err(_) => Ended::Lost(format!(
                "no subscription within {} ms",
                options.timeout.as_millis()
            )),
        };
        match ended {
            Ended::Stopped => return,
            Ended::Lost(reason) => {
                // One warning per outage, not one per retry.
                if failures == 0 {
                    tracing::warn!(
                        target: "keybound::redis",
                        reason = %reason,
                        "invalidation listener lost its subscription; the session cache is \
                         suspended until it is back"
                    );
                }
                failures += 1;
            }
        }
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn set_subscribed(status: &Status, subscribed: bool) {
    status.subscribed.store(subscribed, Ordering::Release);
    status.changed.notify_waiters();
    metrics::gauge!(METRIC_SUBSCRIBED).set(if subscribed { 1.0 } else { 0.0 });
}

/// Pings the subscription after `interval`; `false` when it did not answer in time.
async fn ping_after(mut sink: PubSubSink, interval: Duration, timeout: Duration) -> bool {
    tokio::time::sleep(interval).await;
    matches!(
        tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await,
        Ok(Ok(_))
    )
}

async fn listen(
    pubsub: PubSub,
    options: &RedisOptions,
    cache: &dyn SessionCacheControl,
    status: &Status,
    stopped: &mut oneshot::Receiver<()>,
) -> Ended {
    let (sink, mut messages) = pubsub.split();
    let ping = |sink: &PubSubSink| {
        Box::pin(ping_after(
            sink.clone(),
            options.liveness_interval,
            options.timeout,
        ))
    };
    let mut liveness = ping(&sink);
    loop {
        tokio::select! {
            _ = &mut *stopped => return Ended::Stopped,
            message = messages.next() => match message {
                Some(message) => {
                    // Counted once the cache entry is gone, so whoever waits for the
                    // count sees the invalidation done.
                    invalidate(cache, message.get_payload_bytes());
                    status.notices.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(METRIC_INVALIDATIONS).increment(1);
                }
                None => return Ended::Lost("the connection closed".into()),
            },
            alive = &mut liveness => {
                if !alive {
                    return Ended::Lost("the subscription did not answer a PING".into());
                }
                liveness = ping(&sink);
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Notice<'a> {
    #[serde(borrow)]
    session_id: &'a str,
}

/// Drops the session a notice names. Anything unreadable drops the whole cache: a
/// notice is never ignored.
fn invalidate(cache: &dyn SessionCacheControl, payload: &[u8]) {
    match serde_json::from_slice::<Notice<'_>>(payload) {
        Ok(notice) => match SessionId::parse(notice.session_id) {
            Some(id) => cache.invalidate(&id),
            None => invalidate_all(cache),
        },
        Err(_) => invalidate_all(cache),
    }
}

fn invalidate_all(cache: &dyn SessionCacheControl) {
    tracing::warn!(target: "keybound::redis", "unreadable invalidation notice; dropping the whole session cache");
    cache.invalidate_all();
}
