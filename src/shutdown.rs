//! Shutting down: one trigger, any number of listeners.
//!
//! `Application` holds the `ShutdownTrigger`; every open stream holds a `Shutdown` and ends
//! as soon as it fires, before the HTTP server gives requests in flight their grace period.
//! `signals()` is what `herald serve` waits for: SIGTERM or SIGINT.

use tokio::sync::watch;

/// A listener: cheap to clone, one per open stream.
#[derive(Clone)]
pub struct Shutdown {
    stopping: watch::Receiver<bool>,
}

/// Fires every `Shutdown` made from it.
pub struct ShutdownTrigger {
    stopping: watch::Sender<bool>,
}

/// A new trigger with its first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (stopping, listener) = watch::channel(false);
    (
        ShutdownTrigger { stopping },
        Shutdown { stopping: listener },
    )
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        self.stopping.send_replace(true);
    }
}

impl Shutdown {
    /// Completes once Herald is stopping (or the trigger is gone).
    pub async fn wait(mut self) {
        let _ = self.stopping.wait_for(|stopping| *stopping).await;
    }
}

/// Installs the SIGTERM and SIGINT handlers (Ctrl-C elsewhere than Unix) and returns what
/// completes on either. A handler that cannot be installed is an error, so that start-up
/// fails instead of running a Herald that SIGTERM would never stop.
pub fn signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
