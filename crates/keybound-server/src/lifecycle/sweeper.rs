//! Cleanup: expire idle sessions durably, purge terminal ones after retention, let
//! the replay store forget old entries — in bounded batches, once or periodically.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::audit::AuditEventKind;
use super::policy::secs;
use super::{LifecycleError, SessionService, metrics};
use crate::BoxFuture;
use crate::store::{SweepAction, SweepRequest};

/// Work run at the end of every sweep, given the time in milliseconds since the
/// epoch: the replay store's cleanup. Implemented for every `Fn(i64) + Send + Sync`
/// closure; implement it directly for asynchronous cleanup.
pub trait SweepHook: Send + Sync + 'static {
    /// Runs the cleanup.
    fn run(&self, now_ms: i64) -> BoxFuture<'_, ()>;
}

impl<F: Fn(i64) + Send + Sync + 'static> SweepHook for F {
    fn run(&self, now_ms: i64) -> BoxFuture<'_, ()> {
        self(now_ms);
        Box::pin(std::future::ready(()))
    }
}

/// What one complete sweep did.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions moved from `active` to `expired`.
    pub expired: u64,
    /// Sessions removed after retention.
    pub purged: u64,
    /// Store batches it took.
    pub batches: u64,
    /// Sessions still stored as active afterwards.
    pub active: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl SessionService {
    /// Runs one complete sweep now: expires `active` sessions past their deadline,
    /// purges terminal sessions that ended more than the retention period ago, then
    /// runs the replay cleanup hook and updates the active-sessions gauge.
    ///
    /// The store is asked in batches of the policy's batch size and the task yields
    /// between batches, so a large sweep never holds the store for long. Each expiry
    /// and purge emits its audit event.
    pub async fn sweep_once(&self) -> Result<SweepReport, LifecycleError> {
        let started = Instant::now();
        let result = self.sweep_inner().await;
        let elapsed = started.elapsed();
        metrics::sweep(result.is_ok(), elapsed.as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(target: "keybound::lifecycle", error = %e, code = e.code(), "session sweep failed");
        }
        result.map(|report| SweepReport { elapsed, ..report })
    }

    async fn sweep_inner(&self) -> Result<SweepReport, LifecycleError> {
        let inner = &self.inner;
        let now = self.now();
        let purge_ended_before = now.saturating_sub(secs(inner.policy.retention()));
        let mut report = SweepReport::default();
        let mut cursor = 0;
        loop {
            let batch = inner
                .store
                .sweep(SweepRequest {
                    now,
                    purge_ended_before,
                    limit: inner.policy.sweep_batch_size(),
                    cursor,
                })
                .await?;
            report.batches += 1;
            let mut purged = 0;
            for swept in &batch.swept {
                match swept.action {
                    SweepAction::Expired => {
                        report.expired += 1;
                        self.swept(swept, AuditEventKind::Expired);
                    }
                    SweepAction::Purged => {
                        purged += 1;
                        self.swept(swept, AuditEventKind::Purged);
                    }
                }
            }
            report.purged += purged;
            metrics::purged(purged);
            if batch.done {
                break;
            }
            cursor = batch.cursor;
            tokio::task::yield_now().await;
        }
        if let Some(hook) = &inner.replay_cleanup {
            hook.run(inner.clock.now_ms()).await;
        }
        report.active = inner.store.count_active().await?;
        metrics::active(report.active);
        Ok(report)
    }

    /// Starts the background sweeper: [`sweep_once`](Self::sweep_once) every
    /// `policy.sweep_interval()` (real time; the first run right away). Failed sweeps
    /// are logged and retried at the next tick. Stops when the handle is stopped or
    /// dropped.
    ///
    /// Must be called within a tokio runtime (`no_runtime` otherwise).
    pub fn spawn_sweeper(&self) -> Result<SweeperHandle, LifecycleError> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| LifecycleError::NoRuntime)?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let service = self.clone();
        let period = self.inner.policy.sweep_interval();
        let task = handle.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {
                        // Errors are logged and counted inside.
                        let _ = service.sweep_once().await;
                    }
                }
            }
        });
        Ok(SweeperHandle {
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// The running background sweeper; dropping it stops the sweeper.
#[derive(Debug)]
pub struct SweeperHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SweeperHandle {
    /// Stops the sweeper after the sweep in progress, if any, and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SweeperHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
