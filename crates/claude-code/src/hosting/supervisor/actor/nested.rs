//! Nested supervisors: a child whose spec was made with
//! [`SessionSpec::supervisor`](crate::SessionSpec::supervisor) runs a whole
//! [`Supervisor`] instead of one CLI. The parent starts it from its builder (its own
//! children start in order; a failure fails the child's start), monitors it through
//! [`Supervisor::closed`], and treats its end like a session's: a normal stop is a normal
//! exit, [`SupervisorError::MaxRestartIntensity`] is a crash that the parent's strategy,
//! restart type and intensity act on, as in OTP. Everything else (strategies, intensity,
//! shutdown order) is the parent actor's ordinary code.

use super::{Actor, Process};
use crate::error::Error;
use crate::hosting::supervisor::{Supervisor, SupervisorError};

impl Actor {
    /// Starts child `idx`'s nested supervisor and registers a monitor for its end.
    pub(super) async fn start_nested(&mut self, idx: usize) -> Result<(), Error> {
        let Some(builder) = self.children[idx].spec.nested.clone() else {
            return Err(Error::closed("not a supervisor child"));
        };
        let started = std::time::Instant::now();
        // Boxed: a supervisor starting a supervisor is a recursive future.
        let start: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Supervisor, SupervisorError>> + Send>,
        > = Box::pin(builder.start());
        let sup = start
            .await
            .map_err(|e| Error::closed(format!("child supervisor failed to start: {e}")))?;
        self.children[idx].process = Process::Supervisor(Some(sup.clone()));
        self.mark_running(idx, None, false, started);
        let child = &mut self.children[idx];
        let name = child.spec.name.clone();
        child.answer_waiters(|| Err(SupervisorError::NotASession { name: name.clone() }));
        self.monitor(idx, async move {
            sup.closed()
                .await
                .map_err(|e| Error::closed(format!("child supervisor ended: {e}")))
        });
        Ok(())
    }
}
