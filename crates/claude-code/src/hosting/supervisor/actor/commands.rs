//! The supervisor handle's commands, one method each; `on_command` only dispatches.

use std::time::SystemTime;

use super::{Actor, Child, Command, Ended, Process, Reply, Target};
use crate::hosting::supervisor::{ChildStatus, SessionCounts, Supervisor, SupervisorError};
use crate::telemetry;

impl Actor {
    /// Serves one command from a handle.
    pub(super) async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::StartChild { spec, reply } => {
                let _ = reply.send(self.add_child(*spec).await);
            }
            Command::Terminate { name, reply } => {
                let _ = reply.send(self.terminate(name).await);
            }
            Command::Restart { name, reply } => {
                let _ = reply.send(self.restart_now(name).await);
            }
            Command::Lookup {
                name,
                activity,
                reply,
            } => self.lookup(name, activity, reply).await,
            Command::ChildSupervisor { name, reply } => {
                let _ = reply.send(self.child_supervisor(name));
            }
            Command::Count { reply } => {
                let _ = reply.send(self.counts());
            }
            Command::Cost { reply } => {
                let _ = reply.send(self.cost_report());
            }
            Command::List { reply } => {
                let _ = reply.send(self.children.iter().map(Child::info).collect());
            }
            Command::Sessions { reply } => {
                let _ = reply.send(
                    self.children
                        .iter()
                        .map(|c| (c.spec.name.clone(), c.status.clone(), c.session().cloned()))
                        .collect(),
                );
            }
            Command::Stop { reply } => {
                // Handled by the loop; kept exhaustive.
                self.shutdown(Ended::Normal).await;
                let _ = reply.send(());
            }
        }
    }

    /// Stops child `name` and forgets it (its cost moves to the retired total).
    async fn terminate(&mut self, name: String) -> Result<(), SupervisorError> {
        let idx = self
            .find(&name)
            .ok_or_else(|| SupervisorError::NotFound { name: name.clone() })?;
        self.stop_process(idx).await;
        let mut child = self.children.remove(idx);
        self.retired.add(&child.cost_totals());
        tracing::info!(supervisor = %self.name, child = %name, "session terminated");
        child.answer_waiters(|| Err(SupervisorError::NotFound { name: name.clone() }));
        Ok(())
    }

    /// Restarts child `name` now (counts as a restart; a failed start takes the normal
    /// failure path: intensity and back-off).
    async fn restart_now(&mut self, name: String) -> Result<(), SupervisorError> {
        let idx = self
            .find(&name)
            .ok_or_else(|| SupervisorError::NotFound { name: name.clone() })?;
        self.stop_process(idx).await;
        let child = &mut self.children[idx];
        child.status = ChildStatus::Restarting;
        child.restarts += 1;
        telemetry::child_restart(&self.name, &name, child.restarts);
        self.admit_blocking(idx).await?;
        match self.start_process(idx).await {
            Ok(()) => Ok(()),
            Err(source) => {
                self.restart_group(vec![name.clone()]).await;
                Err(SupervisorError::StartFailed {
                    child: name,
                    source,
                })
            }
        }
    }

    /// Resolves child `name` to its running session: at once, after a wake (hibernated)
    /// or after a restart in progress. `activity` marks a turn (budget and last activity).
    async fn lookup(
        &mut self,
        name: String,
        activity: bool,
        reply: Reply<Result<Target, SupervisorError>>,
    ) {
        let Some(idx) = self.find(&name) else {
            let _ = reply.send(Err(SupervisorError::NotFound { name }));
            return;
        };
        if self.children[idx].is_supervisor() {
            let _ = reply.send(Err(SupervisorError::NotASession { name }));
            return;
        }
        if activity {
            if let Err(e) = self.check_budget(idx) {
                let _ = reply.send(Err(e));
                return;
            }
        }
        let child = &mut self.children[idx];
        child.live.touch();
        if activity {
            child.last_activity = Some(SystemTime::now());
        }
        match (&child.status, child.session()) {
            (ChildStatus::Hibernated, _) => {
                child.waiters.push(reply);
                self.request_wake(idx).await;
            }
            (ChildStatus::Running, Some(s)) if !s.is_closed() => {
                let _ = reply.send(Ok(child.target(s)));
            }
            // Dead but its end not processed yet, or restarting: wait.
            (ChildStatus::Running | ChildStatus::Restarting, _) => child.waiters.push(reply),
            (ChildStatus::Stopped | ChildStatus::Exited(_), _) => {
                let _ = reply.send(Err(SupervisorError::NotRunning { name }));
            }
        }
    }

    /// The handle of nested supervisor child `name`.
    fn child_supervisor(&self, name: String) -> Result<Supervisor, SupervisorError> {
        match self.find(&name).map(|i| &self.children[i]) {
            None => Err(SupervisorError::NotFound { name }),
            Some(c) => match &c.process {
                Process::Supervisor(Some(sup)) => Ok(sup.clone()),
                Process::Supervisor(None) => Err(SupervisorError::NotRunning { name }),
                Process::Session(_) => Err(SupervisorError::NotASupervisor { name }),
            },
        }
    }

    fn counts(&self) -> SessionCounts {
        let with =
            |status: ChildStatus| self.children.iter().filter(|c| c.status == status).count();
        SessionCounts {
            specs: self.children.len(),
            active: with(ChildStatus::Running),
            hibernated: with(ChildStatus::Hibernated),
            wakes: self.hosting.wakes,
        }
    }
}
