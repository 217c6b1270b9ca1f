//! Seams for the integration tests: ONE value, made by the application and handed to the parts at
//! construction, that a test holds to stop or break a step (hold a database read to replay a race,
//! make reads panic, hold a sweep halfway, stop a write after its commit, reorder the catalog under
//! a deep page). Without the `test-hooks` feature (every release build) it holds nothing and each
//! seam is an empty function.

#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
#[cfg(feature = "test-hooks")]
use std::sync::{Arc, RwLock};

#[cfg(feature = "test-hooks")]
use tokio::sync::Semaphore;

#[derive(Clone, Default)]
pub struct Hooks {
    #[cfg(feature = "test-hooks")]
    seams: Arc<Seams>,
}

#[cfg(feature = "test-hooks")]
#[derive(Default)]
struct Seams {
    hold_reads: RwLock<Option<Arc<Semaphore>>>,
    panic_on_reads: AtomicBool,
    reorder_on_reads: AtomicBool,
    hold_sweeps: RwLock<Option<Arc<Semaphore>>>,
    sweeps_held: AtomicU64,
    hold_relay_ticks: RwLock<Option<Arc<Semaphore>>>,
    hold_relay_passes: RwLock<Option<Arc<Semaphore>>>,
    relay_passes_held: AtomicU64,
    stall_after_commit: AtomicBool,
    hold_heavy_reads: RwLock<Option<Arc<Semaphore>>>,
    heavy_reads_held: AtomicU64,
}

/// Waits for a permit of the gate in `slot`, if a test set one.
#[cfg(feature = "test-hooks")]
async fn pass(slot: &RwLock<Option<Arc<Semaphore>>>) {
    let gate = slot.read().ok().and_then(|g| g.clone());
    if let Some(gate) = gate {
        let _ = gate.acquire().await.map(tokio::sync::SemaphorePermit::forget);
    }
}

impl Hooks {
    /// After a database read of pages or films for a request, before its result is used: a read
    /// panics while a test asks, and waits while a test holds reads.
    pub async fn after_read(&self) {
        self.panic_if_asked();
        #[cfg(feature = "test-hooks")]
        pass(&self.seams.hold_reads).await;
    }

    /// Before a write reads its row: it panics while a test makes reads panic, as a bug would.
    pub fn before_write(&self) {
        self.panic_if_asked();
    }

    fn panic_if_asked(&self) {
        #[cfg(feature = "test-hooks")]
        {
            #[expect(clippy::panic, reason = "the seam stands for a bug of ours")]
            if self.seams.panic_on_reads.load(Relaxed) {
                panic!("test hook: this read panics");
            }
        }
    }

    /// While a heavy read holds its connection, before its statement: waits while a test holds
    /// heavy reads (a slow search, as the pool sees it).
    pub async fn in_heavy_read(&self) {
        #[cfg(feature = "test-hooks")]
        {
            if self.seams.hold_heavy_reads.read().is_ok_and(|g| g.is_some()) {
                self.seams.heavy_reads_held.fetch_add(1, Relaxed);
            }
            pass(&self.seams.hold_heavy_reads).await;
        }
    }

    /// After a listing page's query: whether a test wants the order changed, as by a writer.
    pub fn reorders(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        return self.seams.reorder_on_reads.load(Relaxed);
        #[cfg(not(feature = "test-hooks"))]
        false
    }

    /// Halfway through a sweep's batch: waits while a test holds sweeps.
    pub async fn in_sweep(&self) {
        #[cfg(feature = "test-hooks")]
        {
            if self.seams.hold_sweeps.read().is_ok_and(|g| g.is_some()) {
                self.seams.sweeps_held.fetch_add(1, Relaxed);
            }
            pass(&self.seams.hold_sweeps).await;
        }
    }

    /// Before a tick of the cache log's relay begins: waits while a test holds ticks.
    pub async fn before_relay_tick(&self) {
        #[cfg(feature = "test-hooks")]
        pass(&self.seams.hold_relay_ticks).await;
    }

    /// Before a pass of the cache log's relay claims rows (after its check of what Redis is):
    /// waits while a test holds passes.
    pub async fn before_relay_pass(&self) {
        #[cfg(feature = "test-hooks")]
        {
            if self.seams.hold_relay_passes.read().is_ok_and(|g| g.is_some()) {
                self.seams.relay_passes_held.fetch_add(1, Relaxed);
            }
            pass(&self.seams.hold_relay_passes).await;
        }
    }

    /// After a write's commit, before the cache is told: stops for good while a test asks (it
    /// kills the process there).
    pub async fn after_commit(&self) {
        #[cfg(feature = "test-hooks")]
        if self.seams.stall_after_commit.load(Relaxed) {
            std::future::pending::<()>().await;
        }
    }
}

/// What the tests set.
#[cfg(feature = "test-hooks")]
impl Hooks {
    /// The seams of a process started with `MARQUEE_TEST_STALL_AFTER_COMMIT` set stop every write
    /// after its commit (a test then kills the process).
    pub fn from_env() -> Self {
        let hooks = Self::default();
        let stall = std::env::var_os("MARQUEE_TEST_STALL_AFTER_COMMIT").is_some();
        hooks.seams.stall_after_commit.store(stall, Relaxed);
        hooks
    }

    /// Holds every database read of pages and films after it returns, until `gate` gives a permit
    /// (`None` lets reads through again).
    pub fn hold_reads(&self, gate: Option<Arc<Semaphore>>) {
        if let Ok(mut hold) = self.seams.hold_reads.write() {
            *hold = gate;
        }
    }

    /// Every read of pages and films (and a write's read of its row) panics while `on`.
    pub fn panic_on_reads(&self, on: bool) {
        self.seams.panic_on_reads.store(on, Relaxed);
    }

    /// After every listing page query, the order version moves on while `on`.
    pub fn reorder_on_reads(&self, on: bool) {
        self.seams.reorder_on_reads.store(on, Relaxed);
    }

    /// Every sweep batch waits for a permit of `gate` (`None` lets them through).
    pub fn hold_sweeps(&self, gate: Option<Arc<Semaphore>>) {
        if let Ok(mut hold) = self.seams.hold_sweeps.write() {
            *hold = gate;
        }
    }

    /// How many sweep batches have reached the hold.
    pub fn sweeps_held(&self) -> u64 {
        self.seams.sweeps_held.load(Relaxed)
    }

    /// Every tick of the relay waits for a permit of `gate` before it begins (`None` lets them
    /// through).
    pub fn hold_relay_ticks(&self, gate: Option<Arc<Semaphore>>) {
        if let Ok(mut hold) = self.seams.hold_relay_ticks.write() {
            *hold = gate;
        }
    }

    /// Every pass of the relay waits for a permit of `gate` (`None` lets them through).
    pub fn hold_relay_passes(&self, gate: Option<Arc<Semaphore>>) {
        if let Ok(mut hold) = self.seams.hold_relay_passes.write() {
            *hold = gate;
        }
    }

    /// Every heavy read waits for a permit of `gate` on its connection (`None` lets them through).
    pub fn hold_heavy_reads(&self, gate: Option<Arc<Semaphore>>) {
        if let Ok(mut hold) = self.seams.hold_heavy_reads.write() {
            *hold = gate;
        }
    }

    /// How many heavy reads have reached the hold.
    pub fn heavy_reads_held(&self) -> u64 {
        self.seams.heavy_reads_held.load(Relaxed)
    }

    /// How many relay passes have reached the hold.
    pub fn relay_passes_held(&self) -> u64 {
        self.seams.relay_passes_held.load(Relaxed)
    }
}

#[cfg(not(feature = "test-hooks"))]
impl Hooks {
    pub fn from_env() -> Self {
        Self::default()
    }
}
