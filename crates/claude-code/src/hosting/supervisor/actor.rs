//! The supervisor actor: one task owns every child (its [`Session`], restart count and
//! bookkeeping), serves the handle's commands, hears children end through a monitor
//! task per process (awaiting [`Session::closed`]), and applies the strategy, restart
//! types and intensity. Starts and stops of children run inside the actor, one at a time
//! (like an OTP supervisor), so calls addressed to a restarting child simply wait.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::health;
mod commands;
mod hibernate;
mod monitor;
mod nested;
mod restarts;
use super::intensity::{Backoff, RestartIntensity};
use super::{
    ChildInfo, ChildStatus, SessionCounts, SessionSpec, Strategy, SupervisorBuilder,
    SupervisorError,
};
use crate::error::{Error, ExitInfo};
use crate::hosting::cost::{CostReport, CostTotals, CostTracker};
use crate::session::{Health, Session, UnhealthyReason};
use crate::telemetry;
use crate::util::or_pending;

/// Why the supervisor ended, published for [`Supervisor::closed`](super::Supervisor::closed).
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// Stopped on request (or every handle dropped).
    Normal,
    /// The restart intensity was exceeded.
    Intensity {
        max_restarts: u32,
        period: Duration,
        child: String,
    },
}

type Reply<T> = oneshot::Sender<T>;

/// A child's cost tracker, shared with the streams of its turns (internal only).
pub(crate) type SharedCost = Arc<Mutex<CostTracker>>;

/// What a lookup returns: the child's current session and its cost tracker.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) session: Session,
    pub(crate) cost: SharedCost,
}

fn lock(cost: &SharedCost) -> std::sync::MutexGuard<'_, CostTracker> {
    cost.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the handle asks of the actor.
pub(crate) enum Command {
    StartChild {
        spec: Box<SessionSpec>,
        reply: Reply<Result<(), SupervisorError>>,
    },
    Terminate {
        name: String,
        reply: Reply<Result<(), SupervisorError>>,
    },
    Restart {
        name: String,
        reply: Reply<Result<(), SupervisorError>>,
    },
    Lookup {
        name: String,
        activity: bool,
        reply: Reply<Result<Target, SupervisorError>>,
    },
    Cost {
        reply: Reply<CostReport>,
    },
    Count {
        reply: Reply<SessionCounts>,
    },
    List {
        reply: Reply<Vec<ChildInfo>>,
    },
    Sessions {
        reply: Reply<Vec<(String, ChildStatus, Option<Session>)>>,
    },
    Stop {
        reply: Reply<()>,
    },
    /// The handle of a nested supervisor child.
    ChildSupervisor {
        name: String,
        reply: Reply<Result<super::Supervisor, SupervisorError>>,
    },
}

/// What the actor's own helper tasks tell it.
enum Event {
    /// A child's process ended (`Err`: abnormally).
    Exited {
        name: String,
        generation: u64,
        result: Result<(), Error>,
    },
    /// A back-off delay passed: start these children (in this order).
    RestartDue { names: Vec<String> },
    /// The health monitor found a child unhealthy.
    Unhealthy {
        name: String,
        generation: u64,
        reason: UnhealthyReason,
    },
    /// A health round finished.
    HealthDone,
}

struct Child {
    spec: SessionSpec,
    /// What it runs: a session's CLI or a nested supervisor, fixed by the spec.
    process: Process,
    /// Identifies the current process; events from older ones are ignored.
    generation: u64,
    status: ChildStatus,
    restarts: u32,
    /// How its last abnormal end went (a resource limit is named as such).
    last_exit: Option<ExitInfo>,
    started_at: SystemTime,
    last_activity: Option<SystemTime>,
    /// Turns completed by earlier processes.
    turns_before: u64,
    last_session_id: Option<String>,
    /// Lookups waiting for the child to be running again.
    waiters: Vec<Reply<Result<Target, SupervisorError>>>,
    cost: SharedCost,
    /// Hibernation and admission state (see `hibernate`).
    live: hibernate::Live,
}

/// What a child runs, while it runs. The kind follows the spec (`SessionSpec::supervisor`
/// or not) and never changes, so a session child cannot hold a supervisor or the other
/// way round.
enum Process {
    /// A session child and its CLI, when running.
    Session(Option<Session>),
    /// A nested supervisor child, when running.
    Supervisor(Option<super::Supervisor>),
}

impl Process {
    fn for_spec(spec: &SessionSpec) -> Self {
        if spec.nested.is_some() {
            Process::Supervisor(None)
        } else {
            Process::Session(None)
        }
    }
}

impl Child {
    fn new(spec: SessionSpec) -> Self {
        Child {
            process: Process::for_spec(&spec),
            spec,
            generation: 0,
            status: ChildStatus::Restarting,
            restarts: 0,
            last_exit: None,
            started_at: SystemTime::now(),
            last_activity: None,
            turns_before: 0,
            last_session_id: None,
            waiters: Vec::new(),
            cost: SharedCost::default(),
            live: hibernate::Live::default(),
        }
    }

    fn target(&self, session: &Session) -> Target {
        Target {
            session: session.clone(),
            cost: self.cost.clone(),
        }
    }

    fn cost_totals(&self) -> CostTotals {
        lock(&self.cost).totals().clone()
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    /// The running session, for a session child.
    fn session(&self) -> Option<&Session> {
        match &self.process {
            Process::Session(s) => s.as_ref(),
            Process::Supervisor(_) => None,
        }
    }

    /// True for a child that runs a nested supervisor.
    fn is_supervisor(&self) -> bool {
        matches!(self.process, Process::Supervisor(_))
    }

    /// Forgets the current process (keeping its session id and turn count) and returns
    /// the session, for a session child.
    fn detach(&mut self) -> Option<Session> {
        self.generation += 1;
        let session = match &mut self.process {
            Process::Session(s) => s.take()?,
            Process::Supervisor(s) => {
                *s = None;
                return None;
            }
        };
        if let Some(id) = session.session_id() {
            self.last_session_id = Some(id);
        }
        self.turns_before += session.turns_completed();
        Some(session)
    }

    fn answer_waiters(&mut self, result: impl Fn() -> Result<Target, SupervisorError>) {
        for w in self.waiters.drain(..) {
            let _ = w.send(result());
        }
    }

    fn info(&self) -> ChildInfo {
        let session = self.session();
        ChildInfo {
            name: self.spec.name.clone(),
            status: self.status.clone(),
            restart: self.spec.restart,
            session_id: session
                .and_then(Session::session_id)
                .or_else(|| self.last_session_id.clone()),
            pid: session.and_then(Session::pid),
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            started_at: self.started_at,
            last_activity: self.last_activity,
            turns: self.turns_before + session.map_or(0, Session::turns_completed),
            cost_usd: lock(&self.cost).total_usd(),
            wakes: self.live.wakes,
        }
    }
}

/// The health a non-running child reports.
pub(crate) fn health_of(status: &ChildStatus) -> Health {
    Health::Unhealthy(match status {
        ChildStatus::Exited(exit) => UnhealthyReason::ProcessExited(exit.clone()),
        ChildStatus::Stopped => UnhealthyReason::Stopped,
        ChildStatus::Running | ChildStatus::Restarting => UnhealthyReason::NotInitialized,
        // Hibernation is a normal state: the next prompt wakes it.
        ChildStatus::Hibernated => return Health::Healthy,
    })
}

struct Actor {
    name: String,
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    intensity: RestartIntensity,
    backoff: Option<Backoff>,
    probe: Option<Duration>,
    health_running: bool,
    children: Vec<Child>,
    /// Cost of children no longer supervised.
    retired: CostTotals,
    /// Cost recorded outside the children, by name (see `SupervisorBuilder::external_cost`).
    external: Vec<(String, super::SharedTotals)>,
    budget_usd: Option<f64>,
    events_tx: mpsc::Sender<Event>,
    ended: watch::Sender<Option<Ended>>,
    /// Admission control and the wake queue (see `hibernate`).
    hosting: hibernate::Hosting,
}

/// The actor task: starts the initial children, then serves commands and events.
pub(crate) async fn run(
    b: SupervisorBuilder,
    mut cmd_rx: mpsc::Receiver<Command>,
    ended: watch::Sender<Option<Ended>>,
    ready: oneshot::Sender<Result<(), SupervisorError>>,
) {
    let (events_tx, mut events_rx) = mpsc::channel(64);
    let mut actor = Actor {
        name: b.name,
        strategy: b.strategy,
        max_restarts: b.max_restarts,
        period: b.period,
        intensity: RestartIntensity::new(b.max_restarts, b.period),
        backoff: b.backoff,
        probe: b.probe,
        health_running: false,
        children: Vec::new(),
        retired: CostTotals::default(),
        external: b.external_costs,
        budget_usd: b.budget_usd,
        events_tx,
        ended,
        hosting: hibernate::Hosting::new(b.admission),
    };
    for spec in b.children {
        if let Err(e) = actor.add_child(spec).await {
            actor.shutdown(Ended::Normal).await;
            let _ = ready.send(Err(e));
            return;
        }
    }
    tracing::info!(supervisor = %actor.name, children = actor.children.len(), "supervisor started");
    if ready.send(Ok(())).is_err() {
        actor.shutdown(Ended::Normal).await;
        return;
    }

    let mut health = b.health_interval.map(|every| {
        let mut i = tokio::time::interval_at(Instant::now() + every, every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let idle_at = actor.next_idle_check();
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd {
                None => {
                    actor.shutdown(Ended::Normal).await;
                    return;
                }
                Some(Command::Stop { reply }) => {
                    actor.shutdown(Ended::Normal).await;
                    let _ = reply.send(());
                    return;
                }
                Some(cmd) => actor.on_command(cmd).await,
            },
            Some(event) = events_rx.recv() => actor.on_event(event).await,
            _ = or_pending(health.as_mut().map(|i| i.tick())), if health.is_some() => actor.check_health(),
            _ = or_pending(idle_at.map(tokio::time::sleep_until)), if idle_at.is_some() => actor.on_idle_tick().await,
        }
        if actor.ended.borrow().is_some() {
            return; // intensity exceeded; children already stopped
        }
    }
}

/// Whether `--resume id` can work: a session store restores the transcript before the
/// CLI starts; otherwise it must be on disk where the CLI looks (when that is unknown,
/// try).
fn resumable(opts: &crate::options::Options, id: &str) -> bool {
    if opts.has_session_store() {
        return true;
    }
    match opts.cli_config_dir() {
        Some(dir) => crate::history::History::new(dir).session(id).is_ok(),
        None => true,
    }
}

impl Actor {
    fn find(&self, name: &str) -> Option<usize> {
        self.children.iter().position(|c| c.name() == name)
    }

    /// Adds a child at the end and starts it; on failure it is not kept.
    async fn add_child(&mut self, spec: SessionSpec) -> Result<(), SupervisorError> {
        if self.find(&spec.name).is_some() {
            return Err(SupervisorError::DuplicateName { name: spec.name });
        }
        self.children.push(Child::new(spec));
        let idx = self.children.len() - 1;
        if self.children[idx].spec.start_hibernated {
            self.children[idx].status = ChildStatus::Hibernated;
            return Ok(());
        }
        if let Err(e) = self.admit_blocking(idx).await {
            self.children.remove(idx);
            return Err(e.into());
        }
        if let Err(source) = self.start_process(idx).await {
            let child = self.children.remove(idx);
            tracing::warn!(supervisor = %self.name, child = %child.name(), error = %source,
                "session failed to start");
            return Err(SupervisorError::StartFailed {
                child: child.spec.name,
                source,
            });
        }
        Ok(())
    }

    /// Starts a process for child `idx` (resuming its conversation when it had one and
    /// its spec allows), registers a monitor, and answers waiting lookups.
    async fn start_process(&mut self, idx: usize) -> Result<(), Error> {
        if self.children[idx].is_supervisor() {
            return self.start_nested(idx).await;
        }
        let child = &self.children[idx];
        let mut opts = child.spec.options.clone().hosted();
        // A wake always resumes: hibernation must be invisible to the conversation.
        if child.spec.resume_on_restart || child.status == ChildStatus::Hibernated {
            if let Some(id) = &child.last_session_id {
                if resumable(&opts, id) {
                    opts = opts.resume(id.clone());
                } else {
                    // Killed before its first turn was saved: `--resume` would fail at
                    // every restart. Start the conversation afresh instead.
                    tracing::warn!(supervisor = %self.name, child = %child.spec.name,
                        session_id = %id, "no saved conversation to resume; starting a new one");
                }
            }
        }
        let started = std::time::Instant::now();
        let session = Session::start(opts).await?;
        let child = &mut self.children[idx];
        lock(&child.cost).new_process();
        child.process = Process::Session(Some(session.clone()));
        let resumed = child.last_session_id.is_some() && child.spec.resume_on_restart;
        self.mark_running(idx, session.pid(), resumed, started);
        let monitored = session.clone();
        self.monitor(idx, async move { monitored.closed().await });
        let child = &mut self.children[idx];
        let target = child.target(&session);
        child.answer_waiters(|| Ok(target.clone()));
        Ok(())
    }

    /// Records that child `idx` is running again (a new generation) and reports it.
    pub(super) fn mark_running(
        &mut self,
        idx: usize,
        pid: Option<u32>,
        resumed: bool,
        started: std::time::Instant,
    ) {
        let child = &mut self.children[idx];
        child.generation += 1;
        child.status = ChildStatus::Running;
        child.started_at = SystemTime::now();
        telemetry::child_started(
            &self.name,
            &child.spec.name,
            pid,
            resumed,
            child.restarts,
            started.elapsed(),
        );
    }

    /// Reports child `idx`'s end (when `ended` resolves) to the actor, tagged with its
    /// current generation so that the end of a replaced process is ignored.
    pub(super) fn monitor(
        &self,
        idx: usize,
        ended: impl std::future::Future<Output = Result<(), Error>> + Send + 'static,
    ) {
        let child = &self.children[idx];
        let (name, generation, events) = (
            child.spec.name.clone(),
            child.generation,
            self.events_tx.clone(),
        );
        tokio::spawn(async move {
            let result = ended.await;
            let _ = events
                .send(Event::Exited {
                    name,
                    generation,
                    result,
                })
                .await;
        });
    }

    /// Stops child `idx`'s process, if any, so that its end is not treated as a failure.
    async fn stop_process(&mut self, idx: usize) {
        let nested = match &mut self.children[idx].process {
            Process::Supervisor(s) => s.take(),
            Process::Session(_) => None,
        };
        if let Some(session) = self.children[idx].detach() {
            let _ = session.stop().await;
        }
        if let Some(nested) = nested {
            let _ = nested.stop().await;
        }
    }

    /// Totals over every child, current and retired, and the external costs.
    fn cost_report(&self) -> CostReport {
        let mut report = CostReport::default();
        report.total.add(&self.retired);
        for c in &self.children {
            let totals = c.cost_totals();
            report.total.add(&totals);
            report.sessions.insert(c.spec.name.clone(), totals);
        }
        for (name, totals) in &self.external {
            let totals = totals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            report.total.add(&totals);
            report.sessions.insert(name.clone(), totals);
        }
        report
    }

    /// Refuses a new turn for child `idx` when it or the supervisor is over budget.
    fn check_budget(&self, idx: usize) -> Result<(), SupervisorError> {
        let child = &self.children[idx];
        if let Some(limit) = child.spec.budget_usd {
            let spent = lock(&child.cost).total_usd();
            if spent >= limit {
                return Err(SupervisorError::BudgetExceeded {
                    scope: format!("session `{}`", child.spec.name),
                    limit_usd: limit,
                    spent_usd: spent,
                });
            }
        }
        if let Some(limit) = self.budget_usd {
            let spent = self.cost_report().total.cost_usd;
            if spent >= limit {
                return Err(SupervisorError::BudgetExceeded {
                    scope: format!("supervisor `{}`", self.name),
                    limit_usd: limit,
                    spent_usd: spent,
                });
            }
        }
        Ok(())
    }

    /// Stops every child in reverse start order, fails waiting lookups, publishes why.
    async fn shutdown(&mut self, why: Ended) {
        if let Ended::Intensity { child, .. } = &why {
            telemetry::intensity_exceeded(&self.name, child, self.max_restarts, self.period);
        }
        for idx in (0..self.children.len()).rev() {
            self.stop_process(idx).await;
        }
        let err = |why: &Ended, sup: &str| match why {
            Ended::Intensity {
                max_restarts,
                period,
                child,
            } => SupervisorError::MaxRestartIntensity {
                supervisor: sup.to_string(),
                max_restarts: *max_restarts,
                max_seconds: *period,
                child: child.clone(),
            },
            Ended::Normal => SupervisorError::Stopped {
                supervisor: sup.to_string(),
            },
        };
        for c in &mut self.children {
            c.answer_waiters(|| Err(err(&why, &self.name)));
        }
        tracing::info!(supervisor = %self.name, reason = ?why, "supervisor stopped");
        self.ended.send_replace(Some(why));
    }
}
