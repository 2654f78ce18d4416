//! [`SessionSpec`]: what a supervisor needs to (re)start one named session — its
//! [`Options`], its [`Restart`] type and hosting settings. Starting and restarting the
//! session is the supervisor actor's business; turning options into CLI flags is
//! `options`'.

use std::time::Duration;

use crate::options::Options;

/// When a supervisor restarts a child that ended (OTP restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Restart {
    /// Always restarted, whether it ended normally or crashed (the default).
    #[default]
    Permanent,
    /// Restarted only after an abnormal end (the CLI died, or it was found unhealthy).
    Transient,
    /// Never restarted; removed from the supervisor once it ends.
    Temporary,
}

impl Restart {
    /// Whether a child of this type is restarted after ending (`abnormal`: it crashed).
    pub fn restarts_after(self, abnormal: bool) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        }
    }
}

/// A supervised session: a unique name, the session's [`Options`], and hosting settings.
///
/// ```
/// use claude_code::{Restart, SessionSpec};
/// let spec = SessionSpec::new("reviewer")
///     .system_prompt("You review Rust")
///     .max_turns(5)
///     .restart(Restart::Transient);
/// assert_eq!(spec.name(), "reviewer");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionSpec {
    pub(crate) name: String,
    pub(crate) options: Options,
    pub(crate) restart: Restart,
    pub(crate) resume_on_restart: bool,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) budget_usd: Option<f64>,
    /// Set for a child that is itself a supervisor (see [`SessionSpec::supervisor`]).
    pub(crate) nested: Option<Box<super::SupervisorBuilder>>,
    pub(crate) start_hibernated: bool,
}

impl SessionSpec {
    /// A spec with default [`Options`], [`Restart::Permanent`], resuming the conversation
    /// on restart, no idle timeout and no budget.
    pub fn new(name: impl Into<String>) -> Self {
        SessionSpec {
            name: name.into(),
            options: Options::new(),
            restart: Restart::Permanent,
            resume_on_restart: true,
            idle_timeout: None,
            budget_usd: None,
            start_hibernated: false,
            nested: None,
        }
    }

    /// A child that is itself a supervisor, named after the builder's
    /// [`name`](super::SupervisorBuilder::name), [`Restart::Permanent`] unless changed
    /// with [`restart`](Self::restart). Session settings (options, budget, idle timeout)
    /// do not apply to it.
    ///
    /// ```
    /// use claude_code::{Restart, SessionSpec, Supervisor};
    /// let team = Supervisor::builder().name("team").max_restarts(1)
    ///     .child(SessionSpec::new("writer"));
    /// let spec = SessionSpec::supervisor(team).restart(Restart::Transient);
    /// assert_eq!(spec.name(), "team");
    /// assert!(spec.is_supervisor());
    /// ```
    pub fn supervisor(builder: super::SupervisorBuilder) -> Self {
        let mut spec = SessionSpec::new(builder.name.clone());
        spec.nested = Some(Box::new(builder));
        spec
    }

    /// Whether this child is a nested supervisor.
    pub fn is_supervisor(&self) -> bool {
        self.nested.is_some()
    }

    /// The same spec under another name (a host that keeps several owners' sessions in
    /// one supervisor prefixes each name with its owner, for instance).
    ///
    /// ```
    /// use claude_code::SessionSpec;
    /// let spec = SessionSpec::new("assistant").max_turns(3).renamed("acme/assistant");
    /// assert_eq!(spec.name(), "acme/assistant");
    /// ```
    pub fn renamed(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Replaces the session's options wholesale.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Edits the session's options in place (`|o| o.cwd("/srv").max_turns(3)`).
    pub fn with_options(mut self, f: impl FnOnce(Options) -> Options) -> Self {
        self.options = f(std::mem::take(&mut self.options));
        self
    }

    /// The system prompt (see [`Options::system_prompt`]).
    pub fn system_prompt(self, prompt: impl Into<String>) -> Self {
        self.with_options(|o| o.system_prompt(prompt))
    }

    /// The model (see [`Options::model`]).
    pub fn model(self, model: impl Into<String>) -> Self {
        self.with_options(|o| o.model(model))
    }

    /// Most model round-trips per turn (see [`Options::max_turns`]).
    pub fn max_turns(self, turns: u32) -> Self {
        self.with_options(|o| o.max_turns(turns))
    }

    /// The CLI profile (see [`Options::cli_profile`]); unset, a supervised session runs
    /// with [`CliProfile::Lean`](crate::CliProfile::Lean).
    pub fn cli_profile(self, profile: crate::CliProfile) -> Self {
        self.with_options(|o| o.cli_profile(profile))
    }

    /// The restart type (default [`Restart::Permanent`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Whether a restarted session continues the conversation with `--resume <last
    /// session id>` (default `true`); `false` starts a fresh conversation.
    pub fn resume_on_restart(mut self, resume: bool) -> Self {
        self.resume_on_restart = resume;
        self
    }

    /// Hibernate the session after it idles this long: its CLI is stopped, its name,
    /// options and conversation id are kept, and the next prompt resumes it with
    /// `--resume` (transparently, whatever [`resume_on_restart`](Self::resume_on_restart)
    /// says). Also makes it eligible for eviction under admission control.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Adds the child hibernated: no CLI starts until its first prompt.
    pub fn start_hibernated(mut self) -> Self {
        self.start_hibernated = true;
        self
    }

    /// Most USD this session may spend over all its processes; further turns are refused
    /// with [`SupervisorError::BudgetExceeded`](crate::SupervisorError::BudgetExceeded).
    pub fn budget_usd(mut self, usd: f64) -> Self {
        self.budget_usd = Some(usd);
        self
    }

    /// The budget set with [`budget_usd`](Self::budget_usd), if any.
    pub fn budget(&self) -> Option<f64> {
        self.budget_usd
    }

    /// The child's name, unique within its supervisor.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// The options each (re)start begins from.
    pub fn session_options(&self) -> &Options {
        &self.options
    }

    /// The stored idle timeout.
    pub fn idle_timeout_value(&self) -> Option<Duration> {
        self.idle_timeout
    }
}
