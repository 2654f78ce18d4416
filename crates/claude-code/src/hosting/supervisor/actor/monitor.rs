//! The health monitor: periodic checks of running children (a probe round-trip when
//! configured) off the actor, and the restart of one found unhealthy.

use super::*;

impl Actor {
    /// Starts a health round in its own task (so probes never block the actor); it
    /// reports unhealthy children back as events. Skipped while a round still runs.
    pub(super) fn check_health(&mut self) {
        telemetry::sample_cli_rss();
        if self.health_running {
            return;
        }
        self.health_running = true;
        let running: Vec<(String, u64, Session)> = self
            .children
            .iter()
            .filter(|c| c.status == ChildStatus::Running)
            .filter_map(|c| Some((c.spec.name.clone(), c.generation, c.session()?.clone())))
            .collect();
        let (events, probe) = (self.events_tx.clone(), self.probe);
        tokio::spawn(async move {
            let checks = running.into_iter().map(|(name, generation, s)| async move {
                (name, generation, health::check(&s, probe).await)
            });
            for (name, generation, health) in futures::future::join_all(checks).await {
                if let Health::Unhealthy(reason) = health {
                    let event = Event::Unhealthy {
                        name,
                        generation,
                        reason,
                    };
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
            }
            let _ = events.send(Event::HealthDone).await;
        });
    }

    /// Restarts a child the health monitor found unhealthy (an abnormal end).
    pub(super) async fn on_unhealthy(
        &mut self,
        name: String,
        generation: u64,
        reason: UnhealthyReason,
    ) {
        let Some(idx) = self.find(&name) else { return };
        let child = &self.children[idx];
        if child.generation != generation || child.status != ChildStatus::Running {
            return; // already ended or restarted
        }
        tracing::warn!(supervisor = %self.name, child = %name, reason = %reason,
            "session unhealthy; restarting it");
        if let Some(session) = child.session().cloned() {
            let _ = session.stop().await;
        }
        // `child_ended` detaches the process, so its monitor's event is stale.
        self.child_ended(idx, Err(Error::closed(format!("unhealthy: {reason}"))))
            .await;
    }
}
