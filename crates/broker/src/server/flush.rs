//! Flushing the commit log (`flushDiskType`).
//!
//! One thread does every fsync. In `ASYNC_FLUSH` it wakes every
//! `flushIntervalCommitLog`; in `SYNC_FLUSH` it also wakes whenever a send
//! asks for its offset to be durable, and one fsync then covers every send
//! that arrived meanwhile (group commit). Each fsync that made bytes durable
//! emits a `flush` span naming the range.

use lasthop_telemetry::int;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lasthop_vocab::attr;
use tokio::sync::watch;

use crate::store::MessageStore;

#[derive(Debug, Default)]
struct State {
    /// Highest offset a send waits to be durable.
    requested: u64,
    stop: bool,
}

/// The flusher thread and the channel that publishes the flushed offset.
#[derive(Debug)]
pub struct FlushService {
    state: Arc<(Mutex<State>, Condvar)>,
    /// The `lasthop.broker` of its spans (`BrokerConfig::log_owner`).
    owner: Arc<Mutex<String>>,
    flushed: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl FlushService {
    pub fn start(store: Arc<MessageStore>, owner: String, interval: Duration) -> FlushService {
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let owner = Arc::new(Mutex::new(owner));
        let (tx, flushed) = watch::channel(store.flushed());
        let (thread_state, thread_owner) = (state.clone(), owner.clone());
        let thread = std::thread::Builder::new()
            .name("lasthop-flush".into())
            .spawn(move || flush_loop(&store, &thread_owner, interval, &thread_state, &tx))
            .expect("spawn flush thread");
        FlushService {
            state,
            owner,
            flushed,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Names the log's owner in later `flush` spans (a promoted slave's
    /// flushes are the master's from its new epoch on).
    pub fn set_owner(&self, owner: String) {
        *self.owner.lock().expect("flush owner lock") = owner;
    }

    /// Asks for everything below `offset` to be made durable now (sync flush).
    pub fn request(&self, offset: u64) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().expect("flush lock");
        if offset > s.requested {
            s.requested = offset;
            cv.notify_one();
        }
    }

    /// Waits until everything below `offset` is durable; false on timeout.
    pub async fn wait_flushed(&self, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.flushed.clone();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|f| *f >= offset)).await,
            Ok(Ok(_))
        )
    }

    /// Flushes what is left and stops the thread.
    pub fn stop(&self) {
        {
            let (lock, cv) = &*self.state;
            lock.lock().expect("flush lock").stop = true;
            cv.notify_one();
        }
        let thread = self.thread.lock().expect("flush thread lock").take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for FlushService {
    fn drop(&mut self) {
        self.stop();
    }
}

fn flush_loop(
    store: &MessageStore,
    owner: &Mutex<String>,
    interval: Duration,
    state: &(Mutex<State>, Condvar),
    flushed: &watch::Sender<u64>,
) {
    let (lock, cv) = state;
    loop {
        let stop = {
            let guard = lock.lock().expect("flush lock");
            let current = *flushed.borrow();
            let (guard, _) = cv
                .wait_timeout_while(guard, interval, |s| !s.stop && s.requested <= current)
                .expect("flush lock");
            guard.stop
        };
        if store.end() > store.flushed() {
            let broker = owner.lock().expect("flush owner lock").clone();
            flush_once(store, &broker, flushed);
        }
        if stop {
            return;
        }
    }
}

/// One fsync inside a `flush` span that names the range it made durable.
fn flush_once(store: &MessageStore, broker: &str, flushed: &watch::Sender<u64>) {
    let span = tracing::info_span!(
        "flush",
        { attr::HOP } = "flush",
        { attr::BROKER } = broker,
        { attr::BROKER_EPOCH } = int(store.epoch()),
        { attr::RANGE_START } = tracing::field::Empty,
        { attr::RANGE_END } = tracing::field::Empty,
        "otel.status_code" = tracing::field::Empty,
    );
    match store.flush() {
        Ok((before, after)) => {
            span.record(attr::RANGE_START, int(before));
            span.record(attr::RANGE_END, int(after));
            drop(span);
            flushed.send_replace(after);
        }
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            tracing::error!(error = %e, "commit log flush failed");
        }
    }
}
