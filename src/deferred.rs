//! Deferred cache writes. A read path never waits for Redis writes: it queues them, and the
//! request's middleware spawns them once the response is built. The spawned tasks are tracked, so
//! graceful shutdown can wait (bounded) until every one has finished.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::task::TaskTracker;

use crate::stats::{Outcome, Stats};

/// A queued write; resolves to whether it reached Redis.
pub type Job = BoxFuture<'static, Outcome>;

tokio::task_local! {
    static QUEUE: RefCell<Queue>;
}

/// A request's queued writes. Normally `around` spawns them once the response is built; when the
/// request is dropped before that (the client hung up), dropping the queue spawns them instead,
/// so no write is lost and none stays counted as pending.
struct Queue {
    jobs: Vec<Job>,
    deferred: Deferred,
}

impl Drop for Queue {
    fn drop(&mut self) {
        for job in self.jobs.drain(..) {
            if tokio::runtime::Handle::try_current().is_ok() {
                self.deferred.spawn(job);
            } else {
                self.deferred.stats.deferred_finished(Outcome::Skipped);
            }
        }
    }
}

#[derive(Clone)]
pub struct Deferred {
    tracker: TaskTracker,
    stats: Arc<Stats>,
}

impl Deferred {
    pub fn new(stats: Arc<Stats>) -> Self {
        Self { tracker: TaskTracker::new(), stats }
    }

    /// Queues `job` on the current request, or spawns it at once outside of one.
    pub fn defer(&self, job: Job) {
        self.stats.deferred_started();
        let mut slot = Some(job);
        let _ = QUEUE.try_with(|q| q.borrow_mut().jobs.extend(slot.take()));
        if let Some(job) = slot {
            self.spawn(job);
        }
    }

    /// Runs `fut` (a request) with its own queue, then spawns what it queued.
    pub async fn around<T>(&self, fut: impl Future<Output = T>) -> T {
        let queue = Queue { jobs: Vec::new(), deferred: self.clone() };
        let (out, jobs) = QUEUE
            .scope(RefCell::new(queue), async move {
                let out = fut.await;
                (out, QUEUE.try_with(|q| std::mem::take(&mut q.borrow_mut().jobs)).unwrap_or_default())
            })
            .await;
        for job in jobs {
            self.spawn(job);
        }
        out
    }

    fn spawn(&self, job: Job) {
        let stats = self.stats.clone();
        self.tracker.spawn(async move {
            stats.deferred_finished(job.await);
        });
    }

    /// Waits until every spawned write has finished, at most `limit`. True when none is left.
    pub async fn drain(&self, limit: Duration) -> bool {
        self.tracker.close();
        let done = tokio::time::timeout(limit, self.tracker.wait()).await.is_ok();
        self.tracker.reopen();
        done
    }

    pub fn pending(&self) -> usize {
        self.tracker.len()
    }
}
