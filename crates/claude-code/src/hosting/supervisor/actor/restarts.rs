//! What happens when a child ends: the restart type decides whether it comes back, the
//! strategy which siblings come with it, the intensity window whether the supervisor
//! gives up, and back-off when.

use super::*;

impl Actor {
    pub(super) async fn on_event(&mut self, event: Event) {
        match event {
            Event::Exited {
                name,
                generation,
                result,
            } => {
                let Some(idx) = self.find(&name) else { return };
                let child = &self.children[idx];
                if child.generation != generation || child.status != ChildStatus::Running {
                    return; // an old process, or one we stopped on purpose
                }
                self.child_ended(idx, result).await;
            }
            Event::RestartDue { names } => self.restart_group(names).await,
            Event::Unhealthy {
                name,
                generation,
                reason,
            } => self.on_unhealthy(name, generation, reason).await,
            Event::HealthDone => self.health_running = false,
        }
    }

    /// A running child's process ended on its own (or was found unhealthy).
    pub(super) async fn child_ended(&mut self, idx: usize, result: Result<(), Error>) {
        let sup = self.name.clone();
        let child = &mut self.children[idx];
        child.detach();
        let name = child.spec.name.clone();
        let exit = match &result {
            Ok(()) => None,
            Err(Error::ProcessExited { exit, .. }) => Some(exit.clone()),
            Err(Error::ResourceLimit { kind }) => Some(ExitInfo::ResourceLimit(*kind)),
            Err(_) => Some(ExitInfo::Unknown),
        };
        if exit.is_some() {
            child.last_exit = exit.clone();
        }
        match &result {
            Ok(()) => tracing::info!(supervisor = %sup, child = %name, "session ended normally"),
            Err(e) => telemetry::child_crashed(&sup, &name, e),
        }
        if !child.spec.restart.restarts_after(exit.is_some()) {
            let temporary = child.spec.restart == crate::hosting::supervisor::Restart::Temporary;
            child.status = exit.map_or(ChildStatus::Stopped, ChildStatus::Exited);
            child.live.permit = None;
            child.answer_waiters(|| Err(SupervisorError::NotRunning { name: name.clone() }));
            if temporary {
                let child = self.children.remove(idx);
                self.retired.add(&child.cost_totals());
            }
            return;
        }
        let recent = self.intensity.recent(Instant::now());
        if !self.intensity.add(Instant::now()) {
            self.shutdown(Ended::Intensity {
                max_restarts: self.max_restarts,
                period: self.period,
                child: name,
            })
            .await;
            return;
        }
        // Which children go down with it, and restart with it.
        let group: Vec<usize> = match self.strategy {
            Strategy::OneForOne => vec![idx],
            Strategy::OneForAll => (0..self.children.len()).collect(),
            Strategy::RestForOne => (idx..self.children.len()).collect(),
        };
        for &i in group.iter().rev() {
            if i != idx {
                self.stop_process(i).await;
            }
        }
        let mut names = Vec::new();
        let mut temporaries = Vec::new();
        for &i in &group {
            let c = &mut self.children[i];
            if i != idx && c.spec.restart == crate::hosting::supervisor::Restart::Temporary {
                temporaries.push(c.spec.name.clone());
                continue;
            }
            if i == idx || c.status == ChildStatus::Running {
                c.status = ChildStatus::Restarting;
                c.restarts += 1;
                telemetry::child_restart(&sup, &c.spec.name, c.restarts);
                names.push(c.spec.name.clone());
            }
        }
        for t in temporaries {
            if let Some(i) = self.find(&t) {
                let mut c = self.children.remove(i);
                self.retired.add(&c.cost_totals());
                c.answer_waiters(|| Err(SupervisorError::NotFound { name: t.clone() }));
            }
        }
        tracing::info!(supervisor = %sup, child = %name, strategy = ?self.strategy,
            restarting = names.len(), "restarting");
        self.schedule(names, recent).await;
    }

    /// Restarts `names` now, or after the back-off delay for `recent` restarts.
    pub(super) async fn schedule(&mut self, names: Vec<String>, recent: usize) {
        let delay = self.backoff.map_or(Duration::ZERO, |b| b.delay(recent));
        if delay.is_zero() {
            self.restart_group(names).await;
            return;
        }
        tracing::debug!(supervisor = %self.name, delay_ms = delay.as_millis() as u64, "restart delayed");
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(Event::RestartDue { names }).await;
        });
    }

    /// Starts each named child that is still waiting to restart, in order. A start that
    /// fails counts as another restart and is retried (with the rest of the group).
    pub(super) async fn restart_group(&mut self, names: Vec<String>) {
        for (k, name) in names.iter().enumerate() {
            let Some(idx) = self.find(name) else { continue };
            if self.children[idx].status != ChildStatus::Restarting {
                continue; // terminated or restarted meanwhile
            }
            if let Err(e) = self.start_process(idx).await {
                tracing::warn!(supervisor = %self.name, child = %name, error = %e,
                    "restart failed");
                let recent = self.intensity.recent(Instant::now());
                if !self.intensity.add(Instant::now()) {
                    self.shutdown(Ended::Intensity {
                        max_restarts: self.max_restarts,
                        period: self.period,
                        child: name.clone(),
                    })
                    .await;
                    return;
                }
                self.children[idx].restarts += 1;
                telemetry::child_restart(&self.name, name, self.children[idx].restarts);
                let rest = names[k..].to_vec();
                Box::pin(self.schedule(rest, recent)).await;
                return;
            }
        }
    }
}
