//! OTP-style supervision of named sessions.
//!
//! A [`Supervisor`] is a cheap `Clone` handle to a private actor task that owns its
//! children (one [`Session`] each, described by a [`SessionSpec`]). The actor starts
//! children in order, notices a child's end through [`Session::closed`], and restarts
//! children by [`Strategy`] and [`Restart`] type within the restart intensity (more than
//! `max_restarts` restarts within `max_seconds` shuts the supervisor down, children in
//! reverse start order, and [`Supervisor::closed`] reports
//! [`SupervisorError::MaxRestartIntensity`]). A restarted child runs the full initialize
//! handshake again (same [`Options`](crate::Options)) and resumes its conversation with
//! `--resume <last session id>` unless its spec opts out. Children run with
//! [`CliProfile::Lean`](crate::CliProfile::Lean) unless their options name a profile.
//! [`SupervisedSession`] addresses a child by name, so it keeps working across restarts.
//! Sessions themselves are `session`'s business; intensity and back-off arithmetic live
//! in `intensity`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), claude_code::SupervisorError> {
//! use claude_code::{SessionSpec, Supervisor};
//! let sup = Supervisor::builder().name("claude").max_restarts(5).max_seconds(10)
//!     .child(SessionSpec::new("assistant").system_prompt("General-purpose helper"))
//!     .start().await?;
//! let text = sup.session("assistant").stream("Hi").await?.final_text().await?;
//! sup.start_session(SessionSpec::new("temp_agent").max_turns(5)).await?;
//! sup.terminate_session("temp_agent").await?;
//! sup.stop().await?;
//! # Ok(()) }
//! ```

mod actor;
mod health;
mod intensity;
mod spec;

use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, ExitInfo};
use crate::hosting::cost::CostReport;
use crate::options::PermissionMode;
use crate::protocol::UserInput;
use crate::session::stream::MessageStream;
use crate::session::{Health, Session};

pub use intensity::Backoff;
pub use spec::{Restart, SessionSpec};

use actor::{Command, Ended, Target};

/// Which children a supervisor restarts when one of them ends (OTP strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that ended (the default).
    #[default]
    OneForOne,
    /// Stop every other child (reverse start order) and restart them all (start order).
    OneForAll,
    /// Stop the children started after the one that ended, then restart it and them.
    RestForOne,
}

/// Errors of the supervisor and of calls addressed to its children.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// A child with this name already exists; names are unique per supervisor.
    #[error("a session named `{name}` already exists in this supervisor; pick another name")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// No child with this name.
    #[error("no session named `{name}` in this supervisor")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The child ended and its restart type does not restart it.
    #[error(
        "the session `{name}` is not running (it ended and its restart type does not restart \
         it); use restart_session to start it again"
    )]
    NotRunning {
        /// The name.
        name: String,
    },
    /// The child is a nested supervisor, not a session: address its sessions through
    /// [`Supervisor::child_supervisor`].
    #[error(
        "the child `{name}` is a supervisor, not a session; use child_supervisor(\"{name}\") \
         to reach its sessions"
    )]
    NotASession {
        /// The name.
        name: String,
    },
    /// The child is a session, not a nested supervisor.
    #[error("the child `{name}` is a session, not a supervisor; use session(\"{name}\")")]
    NotASupervisor {
        /// The name.
        name: String,
    },
    /// A child failed to start.
    #[error("the session `{child}` failed to start: {source}")]
    StartFailed {
        /// The child's name.
        child: String,
        /// Why.
        #[source]
        source: Error,
    },
    /// More than `max_restarts` restarts within `max_seconds`: the supervisor stopped all
    /// its children and ended.
    #[error(
        "supervisor `{supervisor}` shut down: more than {max_restarts} restarts within \
         {max_seconds:?} (last failing session: `{child}`); fix the cause or raise the limits"
    )]
    MaxRestartIntensity {
        /// The supervisor's name.
        supervisor: String,
        /// The configured limit.
        max_restarts: u32,
        /// The configured window.
        max_seconds: Duration,
        /// The child whose end exceeded the limit.
        child: String,
    },
    /// The supervisor was stopped.
    #[error("supervisor `{supervisor}` is stopped")]
    Stopped {
        /// The supervisor's name.
        supervisor: String,
    },
    /// A call waited too long (for example for a child that is restarting).
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: &'static str,
        /// The timeout that fired.
        after: Duration,
    },
    /// A budget is spent: the turn was refused.
    #[error(
        "the budget of {scope} is spent (${spent_usd:.4} of ${limit_usd:.4}); raise the budget \
         or start a new session"
    )]
    BudgetExceeded {
        /// `session `name`` or `supervisor `name``.
        scope: String,
        /// The configured budget in USD.
        limit_usd: f64,
        /// What was spent in USD.
        spent_usd: f64,
    },
    /// The child's session reported an error.
    #[error(transparent)]
    Session(#[from] Error),
    /// Admission control refused to start the child's CLI.
    #[error(transparent)]
    Admission(#[from] crate::hosting::admission::AdmissionError),
}

impl SupervisorError {
    /// The session error underneath, however it is wrapped (a session's own error, or
    /// the cause of a failed start).
    pub fn session_error(&self) -> Option<&Error> {
        match self {
            SupervisorError::Session(e) | SupervisorError::StartFailed { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// True when the supervisor (or the session underneath) can take no more work.
    pub fn is_closed(&self) -> bool {
        match self {
            SupervisorError::Stopped { .. } | SupervisorError::MaxRestartIntensity { .. } => true,
            _ => self.session_error().is_some_and(Error::is_closed),
        }
    }

    /// True when a wait timed out (the supervisor's or the session's).
    pub fn is_timeout(&self) -> bool {
        matches!(self, SupervisorError::Timeout { .. })
            || self.session_error().is_some_and(Error::is_timeout)
    }
}

/// What a child is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildStatus {
    /// Its CLI is running.
    Running,
    /// It ended and is being restarted (possibly after a back-off delay).
    Restarting,
    /// It ended normally and is not restarted (a transient child).
    Stopped,
    /// It crashed and is not restarted.
    Exited(ExitInfo),
    /// Idle past its [`idle_timeout`](SessionSpec::idle_timeout) (or evicted for
    /// admission): no CLI runs, but its name, options and conversation id are kept and
    /// the next prompt resumes it.
    Hibernated,
}

/// One child as [`Supervisor::list_sessions`] reports it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child's name.
    pub name: String,
    /// What it is doing.
    pub status: ChildStatus,
    /// Its restart type.
    pub restart: Restart,
    /// The conversation id (current, or the last one seen).
    pub session_id: Option<String>,
    /// The CLI's process id while running.
    pub pid: Option<u32>,
    /// How often it was restarted.
    pub restarts: u32,
    /// How its last abnormal end went, if it had one: an exit status, or
    /// [`ExitInfo::ResourceLimit`] when it was ended at a resource limit.
    pub last_exit: Option<ExitInfo>,
    /// When its current (or last) process started.
    pub started_at: SystemTime,
    /// When a turn was last sent to it through the supervisor.
    pub last_activity: Option<SystemTime>,
    /// Turns completed over all its processes.
    pub turns: u64,
    /// USD spent over all its processes, as far as turns went through the supervisor.
    pub cost_usd: f64,
    /// How often it was woken from hibernation.
    pub wakes: u32,
}

/// Child counts, like OTP's `count_children`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionCounts {
    /// Children known to the supervisor (running or not).
    pub specs: usize,
    /// Children whose CLI is running.
    pub active: usize,
    /// Children hibernated (no CLI, resumed on the next prompt).
    pub hibernated: usize,
    /// Wakes from hibernation so far.
    pub wakes: u64,
}

/// One child's health from [`Supervisor::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildHealth {
    /// The child's name.
    pub name: String,
    /// Its status.
    pub status: ChildStatus,
    /// Its session's health (unhealthy when it is not running).
    pub health: Health,
}

/// Builds and starts a [`Supervisor`]. Defaults: name `supervisor`, [`Strategy::OneForOne`],
/// 3 restarts within 5 seconds (OTP's default), no back-off, no health monitor, 60 s call
/// timeout.
#[derive(Debug, Clone)]
#[must_use]
pub struct SupervisorBuilder {
    name: String,
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    backoff: Option<Backoff>,
    health_interval: Option<Duration>,
    probe: Option<Duration>,
    budget_usd: Option<f64>,
    call_timeout: Duration,
    children: Vec<SessionSpec>,
    admission: Option<crate::hosting::admission::Admission>,
    /// Cost of turns run outside the children (a pool's isolated turns), reported under
    /// their own name.
    external_costs: Vec<(String, SharedTotals)>,
}

/// Cost totals shared between a supervisor's report and whoever records them.
pub(crate) type SharedTotals = std::sync::Arc<std::sync::Mutex<crate::hosting::cost::CostTotals>>;

impl Default for SupervisorBuilder {
    fn default() -> Self {
        SupervisorBuilder {
            name: "supervisor".into(),
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            period: Duration::from_secs(5),
            backoff: None,
            health_interval: None,
            probe: None,
            budget_usd: None,
            call_timeout: Duration::from_secs(60),
            children: Vec::new(),
            admission: None,
            external_costs: Vec::new(),
        }
    }
}

impl SupervisorBuilder {
    /// The supervisor's name (in errors, logs and metrics).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The restart strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Most restarts allowed within the window (OTP `intensity`; default 3).
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    /// The window in seconds (OTP `period`; default 5).
    pub fn max_seconds(mut self, secs: u64) -> Self {
        self.period = Duration::from_secs(secs);
        self
    }

    /// The window as a duration (finer than [`max_seconds`](Self::max_seconds)).
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// Delays restarts in a crash loop (default: restart at once, like OTP).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Checks every running child's health at this interval and restarts unhealthy ones
    /// (counted as abnormal ends, so they count toward the intensity).
    pub fn health_check(mut self, interval: Duration) -> Self {
        self.health_interval = Some(interval);
        self
    }

    /// Adds a liveness probe to health checks: a control round-trip the CLI must answer
    /// within `timeout`, else the child is
    /// [`UnhealthyReason::Unresponsive`](crate::UnhealthyReason::Unresponsive).
    pub fn health_probe(mut self, timeout: Duration) -> Self {
        self.probe = Some(timeout);
        self
    }

    /// Most USD all children together may spend (terminated ones included); further
    /// turns are refused with [`SupervisorError::BudgetExceeded`].
    pub fn budget_usd(mut self, usd: f64) -> Self {
        self.budget_usd = Some(usd);
        self
    }

    /// Bound on calls that wait for the supervisor, e.g. for a restarting child
    /// (default 60 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Counts every child's CLI against shared admission control. When no live slot is
    /// free, the least recently used idle child that has an
    /// [`idle_timeout`](SessionSpec::idle_timeout) is hibernated to make room.
    pub fn admission(mut self, admission: crate::hosting::admission::Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Reports `totals` (recorded elsewhere, e.g. a pool's isolated turns) in
    /// [`Supervisor::cost_report`] under `name`, counted in the total and the budget.
    pub(crate) fn external_cost(mut self, name: String, totals: SharedTotals) -> Self {
        self.external_costs.push((name, totals));
        self
    }

    /// Adds a child, started in the order added.
    pub fn child(mut self, spec: SessionSpec) -> Self {
        self.children.push(spec);
        self
    }

    /// Adds a nested supervisor as a child, started in the order added, with
    /// [`Restart::Permanent`] (see [`SessionSpec::supervisor`] for other restart types).
    /// When it exceeds its own restart intensity it ends, and this supervisor counts
    /// that as a failure of the child (OTP semantics).
    pub fn child_supervisor(self, builder: SupervisorBuilder) -> Self {
        self.child(SessionSpec::supervisor(builder))
    }

    /// Adds several children.
    pub fn children(mut self, specs: impl IntoIterator<Item = SessionSpec>) -> Self {
        self.children.extend(specs);
        self
    }

    /// Starts the children in order and returns the supervisor once all run. A child that
    /// fails to start stops the ones already started (reverse order) and fails the start
    /// with [`SupervisorError::StartFailed`].
    pub async fn start(self) -> Result<Supervisor, SupervisorError> {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ended_tx, ended_rx) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let probe = self.probe;
        let name = self.name.clone();
        let call_timeout = self.call_timeout;
        spawn_actor(self, cmd_rx, ended_tx, ready_tx);
        let sup = Supervisor {
            name,
            cmd: cmd_tx,
            ended: ended_rx,
            call_timeout,
            probe,
        };
        match ready_rx.await {
            Ok(Ok(())) => Ok(sup),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(sup.ended_error()),
        }
    }
}

/// Spawns a supervisor's actor. A plain function, not inlined into the `async`
/// [`SupervisorBuilder::start`]: a nested supervisor child starts a supervisor from inside
/// the actor, and the compiler can only prove that recursive future `Send` when the spawn
/// (which requires it) sits outside `start`'s own future.
fn spawn_actor(
    builder: SupervisorBuilder,
    cmd_rx: mpsc::Receiver<Command>,
    ended_tx: watch::Sender<Option<Ended>>,
    ready_tx: oneshot::Sender<Result<(), SupervisorError>>,
) {
    tokio::spawn(actor::run(builder, cmd_rx, ended_tx, ready_tx));
}

/// A running supervisor. Cheap to clone; every clone addresses the same actor. When the
/// last handle (including every [`SupervisedSession`]) is dropped, the supervisor stops
/// its children.
#[derive(Debug, Clone)]
pub struct Supervisor {
    name: String,
    cmd: mpsc::Sender<Command>,
    ended: watch::Receiver<Option<Ended>>,
    call_timeout: Duration,
    probe: Option<Duration>,
}

impl Supervisor {
    /// A builder with OTP's defaults.
    pub fn builder() -> SupervisorBuilder {
        SupervisorBuilder::default()
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a new child (appended to the start order).
    pub async fn start_session(
        &self,
        spec: SessionSpec,
    ) -> Result<SupervisedSession, SupervisorError> {
        let name = spec.name.clone();
        self.call(|reply| Command::StartChild {
            spec: Box::new(spec),
            reply,
        })
        .await??;
        Ok(self.session(name))
    }

    /// The handle of the nested supervisor child `name` (its current incarnation: after
    /// the parent restarts it, ask again).
    pub async fn child_supervisor(&self, name: &str) -> Result<Supervisor, SupervisorError> {
        let name = name.to_string();
        self.call(|reply| Command::ChildSupervisor { name, reply })
            .await?
    }

    /// Stops a child and removes it; it is not restarted.
    pub async fn terminate_session(&self, name: &str) -> Result<(), SupervisorError> {
        let name = name.to_string();
        self.call(|reply| Command::Terminate { name, reply })
            .await?
    }

    /// Stops a child (if running) and starts it again, resuming its conversation unless
    /// its spec opts out. Does not count toward the restart intensity.
    pub async fn restart_session(&self, name: &str) -> Result<(), SupervisorError> {
        let name = name.to_string();
        self.call(|reply| Command::Restart { name, reply }).await?
    }

    /// How many children there are and how many run.
    pub async fn count_sessions(&self) -> Result<SessionCounts, SupervisorError> {
        self.call(|reply| Command::Count { reply }).await
    }

    /// Every child, in start order.
    pub async fn list_sessions(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.call(|reply| Command::List { reply }).await
    }

    /// A handle to the child `name`, valid across its restarts. Calls through it fail
    /// with [`SupervisorError::NotFound`] if there is no such child.
    pub fn session(&self, name: impl Into<String>) -> SupervisedSession {
        SupervisedSession {
            name: name.into(),
            sup: self.clone(),
        }
    }

    /// Cost per child and in total (terminated children included), as far as turns
    /// went through [`SupervisedSession::stream`].
    pub async fn cost_report(&self) -> Result<CostReport, SupervisorError> {
        self.call(|reply| Command::Cost { reply }).await
    }

    /// Each child's health, in start order (probed for responsiveness when
    /// [`health_probe`](SupervisorBuilder::health_probe) is set; children are checked
    /// concurrently).
    pub async fn health(&self) -> Result<Vec<ChildHealth>, SupervisorError> {
        let children = self.call(|reply| Command::Sessions { reply }).await?;
        let probe = self.probe;
        let checks = children
            .into_iter()
            .map(|(name, status, session)| async move {
                let health = match (&status, session) {
                    (ChildStatus::Running, Some(s)) => health::check(&s, probe).await,
                    _ => actor::health_of(&status),
                };
                ChildHealth {
                    name,
                    status,
                    health,
                }
            });
        Ok(futures::future::join_all(checks).await)
    }

    /// Stops every child in reverse start order (each gets its graceful close, then is
    /// killed) and ends the supervisor. Stopping a stopped supervisor is a no-op.
    pub async fn stop(&self) -> Result<(), SupervisorError> {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Command::Stop { reply }).await.is_err() {
            return Ok(());
        }
        let _ = rx.await;
        Ok(())
    }

    /// Waits until the supervisor has ended: `Ok(())` after [`stop`](Self::stop),
    /// [`SupervisorError::MaxRestartIntensity`] when its children kept failing.
    pub async fn closed(&self) -> Result<(), SupervisorError> {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(Option::is_some).await;
        let reason = ended.borrow().clone();
        match reason {
            Some(Ended::Intensity { .. }) => Err(self.ended_error()),
            _ => Ok(()),
        }
    }

    /// True once the supervisor has ended.
    pub fn is_closed(&self) -> bool {
        self.ended.borrow().is_some() || self.cmd.is_closed()
    }

    /// Sends a command and awaits its reply, bounded by the call timeout.
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(make(reply))
            .await
            .map_err(|_| self.ended_error())?;
        match tokio::time::timeout(self.call_timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(self.ended_error()),
            Err(_) => Err(SupervisorError::Timeout {
                what: "the supervisor",
                after: self.call_timeout,
            }),
        }
    }

    /// The error for a call that found the supervisor gone.
    fn ended_error(&self) -> SupervisorError {
        match self.ended.borrow().clone() {
            Some(Ended::Intensity {
                max_restarts,
                period,
                child,
            }) => SupervisorError::MaxRestartIntensity {
                supervisor: self.name.clone(),
                max_restarts,
                max_seconds: period,
                child,
            },
            _ => SupervisorError::Stopped {
                supervisor: self.name.clone(),
            },
        }
    }

    /// The child's current session (waits while it restarts).
    async fn lookup(&self, name: &str, activity: bool) -> Result<Target, SupervisorError> {
        let name = name.to_string();
        self.call(|reply| Command::Lookup {
            name,
            activity,
            reply,
        })
        .await?
    }
}

/// A child addressed by name: every call goes to the child's current session, so a
/// handle obtained before a restart keeps working after it. Calls made while the child
/// restarts wait for the new session (bounded by the supervisor's call timeout).
#[derive(Debug, Clone)]
pub struct SupervisedSession {
    name: String,
    sup: Supervisor,
}

impl SupervisedSession {
    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's current [`Session`] (it is replaced when the child restarts).
    pub async fn current(&self) -> Result<Session, SupervisorError> {
        Ok(self.sup.lookup(&self.name, false).await?.session)
    }

    /// Sends a prompt to the child's current session (see [`Session::stream`]). If the
    /// CLI died before the turn was accepted, the call waits for the restart and sends it
    /// to the new session; a turn already running when the CLI dies ends with an error
    /// and is never replayed.
    pub async fn stream(
        &self,
        prompt: impl Into<UserInput>,
    ) -> Result<MessageStream, SupervisorError> {
        let input = prompt.into();
        let target = self.sup.lookup(&self.name, true).await?;
        let (stream, cost) = match target.session.stream(input.clone()).await {
            Ok(stream) => (stream, target.cost),
            Err(
                Error::ProcessExited { .. }
                | Error::SessionClosed { .. }
                | Error::ResourceLimit { .. },
            ) => {
                // Not accepted: nothing reached the CLI, so sending it again is no replay.
                let target = self.sup.lookup(&self.name, true).await?;
                (target.session.stream(input).await?, target.cost)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(stream.observe(Box::new(move |message| {
            let turn = cost
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record(message);
            if let Some(turn) = turn {
                tracing::debug!(
                    cost_usd = turn.cost_usd,
                    input_tokens = turn.usage.input_tokens,
                    output_tokens = turn.usage.output_tokens,
                    "turn cost recorded"
                );
            }
        })))
    }

    /// Interrupts the running turn (see [`Session::interrupt`]).
    pub async fn interrupt(&self) -> Result<(), SupervisorError> {
        Ok(self.current().await?.interrupt().await?)
    }

    /// Switches the model of the current process (see [`Session::set_model`]). A restart
    /// goes back to the spec's model.
    pub async fn set_model(&self, model: impl Into<Option<String>>) -> Result<(), SupervisorError> {
        Ok(self.current().await?.set_model(model).await?)
    }

    /// Changes the permission mode of the current process.
    pub async fn set_permission_mode(&self, mode: PermissionMode) -> Result<(), SupervisorError> {
        Ok(self.current().await?.set_permission_mode(mode).await?)
    }

    /// The current session's health.
    pub async fn health(&self) -> Result<Health, SupervisorError> {
        Ok(self.current().await?.health().await)
    }

    /// The conversation id of the current session.
    pub async fn session_id(&self) -> Result<Option<String>, SupervisorError> {
        Ok(self.current().await?.session_id())
    }

    /// The current CLI's process id.
    pub async fn pid(&self) -> Result<Option<u32>, SupervisorError> {
        Ok(self.current().await?.pid())
    }

    /// Restarts the child (see [`Supervisor::restart_session`]).
    pub async fn restart(&self) -> Result<(), SupervisorError> {
        self.sup.restart_session(&self.name).await
    }

    /// Stops and removes the child (see [`Supervisor::terminate_session`]).
    pub async fn terminate(&self) -> Result<(), SupervisorError> {
        self.sup.terminate_session(&self.name).await
    }
}
