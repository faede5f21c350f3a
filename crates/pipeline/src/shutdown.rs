//! One way to stop long-running tasks: a [`Shutdown`] handle each task keeps, fired once by
//! its [`ShutdownTrigger`] (mini-redis's `shutdown.rs`, on a watch channel so that any number
//! of tasks, and tasks started later, see the same signal).

use std::time::Duration;

use tokio::sync::watch;

/// Fires the shutdown of every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A task's view of the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl ShutdownTrigger {
    /// A trigger and the first handle on it.
    pub fn new() -> (Self, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Self(tx), Shutdown(rx))
    }

    /// Signal shutdown to every handle.
    pub fn fire(&self) {
        // Kept even when no handle exists yet, so that handles made later see it.
        self.0.send_replace(true);
    }

    /// Another handle.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// A handle on an existing watch channel (`true` = stop).
    pub fn from_watch(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// Whether shutdown was signalled (a dropped trigger counts: nothing could stop us).
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Wait for the signal (at once if it was given already; also when the trigger is gone).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleep for `d`, or less if shutdown is signalled meanwhile.
    pub async fn sleep(&mut self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.recv() => {}
        }
    }
}
