//! [`CliProfile`] and [`CliSwitch`]: the CLI's own environment switches that turn off
//! start-up and background work, as typed values. They become environment variables in
//! `args.rs` ([`Options::to_env`](super::Options::to_env)), nowhere else.
//!
//! `DISABLE_PLUGIN_AUTOLOAD` and `DISABLE_START_HEARTBEATS`, sometimes suggested, are not
//! here: the pinned CLI only contains `PYTEST_DISABLE_PLUGIN_AUTOLOAD` (an allow-listed
//! variable it passes to pytest) and `CLAUDE_RUNNER_DISABLE_START_HEARTBEATS` (its cloud
//! runner's), so setting them changes nothing.
//!
//! Every name here is checked against the pinned CLI binary by `scripts/cli-switches`
//! (run by the `cli_switches` test), so an upgrade that drops or renames one fails loudly.

use std::{fmt, str::FromStr};

/// One environment switch the CLI reads, each set to `1` when on. The first group
/// changes nothing the model sees or the user relies on (it turns off side traffic and
/// background work); the second ([`CliSwitch::changes_behaviour`]) does, and each says
/// what is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CliSwitch {
    /// `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`: no non-essential network calls
    /// (release notes, model-list refreshes, announcements, metrics).
    NonessentialTraffic,
    /// `DISABLE_AUTOUPDATER`: no update check or background self-update.
    Autoupdater,
    /// `DISABLE_TELEMETRY`: no usage telemetry.
    Telemetry,
    /// `DISABLE_ERROR_REPORTING`: no crash/error reports to the vendor.
    ErrorReporting,
    /// `CLAUDE_CODE_DISABLE_FEATURE_FLAGS`: no remote feature-flag fetch (built-in defaults).
    FeatureFlags,
    /// `DISABLE_GROWTHBOOK`: no experiment-assignment client.
    Growthbook,
    /// `CLAUDE_CODE_DISABLE_VITALS_EMITTER`: no process-vitals emitter (on the pinned CLI
    /// only the cloud runner's guest vitals read it).
    VitalsEmitter,
    /// `CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL`: the official plugin
    /// marketplace is not installed on first start.
    OfficialMarketplaceAutoinstall,
    /// `CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS`. **Loses:** the git status and git
    /// instructions in Claude Code's system prompt.
    GitInstructions,
    /// `CLAUDE_CODE_DISABLE_CLAUDE_MDS`. **Loses:** every `CLAUDE.md` (user, project,
    /// local) as context.
    ClaudeMds,
    /// `CLAUDE_CODE_DISABLE_AUTO_MEMORY`. **Loses:** the automatic memory the CLI keeps
    /// and reads between sessions.
    AutoMemory,
    /// `CLAUDE_CODE_DISABLE_BUNDLED_SKILLS`. **Loses:** the skills shipped with the CLI
    /// (the model cannot invoke them).
    BundledSkills,
    /// `CLAUDE_CODE_DISABLE_BACKGROUND_TASKS`. **Loses:** background shell tasks and
    /// agents (`run_in_background`).
    BackgroundTasks,
}

impl CliSwitch {
    /// Every switch: [`CliProfile::Lean`]'s first, then the rest of [`CliProfile::Minimal`].
    pub const ALL: [CliSwitch; 13] = [
        CliSwitch::NonessentialTraffic,
        CliSwitch::Autoupdater,
        CliSwitch::Telemetry,
        CliSwitch::ErrorReporting,
        CliSwitch::FeatureFlags,
        CliSwitch::Growthbook,
        CliSwitch::OfficialMarketplaceAutoinstall,
        CliSwitch::VitalsEmitter,
        CliSwitch::GitInstructions,
        CliSwitch::ClaudeMds,
        CliSwitch::AutoMemory,
        CliSwitch::BundledSkills,
        CliSwitch::BackgroundTasks,
    ];

    /// The environment variable the CLI reads.
    pub fn env_var(self) -> &'static str {
        match self {
            CliSwitch::NonessentialTraffic => "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            CliSwitch::Autoupdater => "DISABLE_AUTOUPDATER",
            CliSwitch::Telemetry => "DISABLE_TELEMETRY",
            CliSwitch::ErrorReporting => "DISABLE_ERROR_REPORTING",
            CliSwitch::FeatureFlags => "CLAUDE_CODE_DISABLE_FEATURE_FLAGS",
            CliSwitch::Growthbook => "DISABLE_GROWTHBOOK",
            CliSwitch::VitalsEmitter => "CLAUDE_CODE_DISABLE_VITALS_EMITTER",
            CliSwitch::OfficialMarketplaceAutoinstall => {
                "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL"
            }
            CliSwitch::GitInstructions => "CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS",
            CliSwitch::ClaudeMds => "CLAUDE_CODE_DISABLE_CLAUDE_MDS",
            CliSwitch::AutoMemory => "CLAUDE_CODE_DISABLE_AUTO_MEMORY",
            CliSwitch::BundledSkills => "CLAUDE_CODE_DISABLE_BUNDLED_SKILLS",
            CliSwitch::BackgroundTasks => "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS",
        }
    }

    /// Whether turning it on changes what the model sees or what the user can rely on
    /// (only [`CliProfile::Minimal`] sets these).
    pub fn changes_behaviour(self) -> bool {
        matches!(
            self,
            CliSwitch::GitInstructions
                | CliSwitch::ClaudeMds
                | CliSwitch::AutoMemory
                | CliSwitch::BundledSkills
                | CliSwitch::BackgroundTasks
        )
    }
}

impl fmt::Display for CliSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.env_var())
    }
}

/// Which of the CLI's [`CliSwitch`]es a session starts with. A bare
/// [`Session`](crate::Session) keeps the CLI's defaults ([`CliProfile::Default`]); the
/// hosting layer (supervisor children, pools, spares) uses [`CliProfile::Lean`] unless
/// the options name a profile. Variables set with [`Options::env`](super::Options::env)
/// or removed with [`Options::env_remove`](super::Options::env_remove) win over the
/// profile's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CliProfile {
    /// No switch: the CLI's own behaviour.
    #[default]
    Default,
    /// Only switches that change nothing the model sees or the user relies on: side
    /// traffic and background work off. See [`CliProfile::switches`].
    Lean,
    /// Every switch: [`CliProfile::Lean`], [`CliSwitch::VitalsEmitter`] and every
    /// behaviour-changing switch: no `CLAUDE.md` context, no git instructions in the
    /// system prompt, no auto memory, no bundled skills, no background tasks.
    Minimal,
}

/// The switches of [`CliProfile::Lean`]: those measured to gain something on the pinned
/// CLI (see `docs/performance.md`). [`CliSwitch::VitalsEmitter`] measured as no gain (on
/// the pinned CLI only the cloud runner reads it), so only `Minimal` sets it.
const LEAN: &[CliSwitch] = &[
    CliSwitch::NonessentialTraffic,
    CliSwitch::Autoupdater,
    CliSwitch::Telemetry,
    CliSwitch::ErrorReporting,
    CliSwitch::FeatureFlags,
    CliSwitch::Growthbook,
    CliSwitch::OfficialMarketplaceAutoinstall,
];

impl CliProfile {
    /// The switches this profile turns on, in [`CliSwitch::ALL`] order.
    pub fn switches(self) -> &'static [CliSwitch] {
        match self {
            CliProfile::Default => &[],
            CliProfile::Lean => LEAN,
            CliProfile::Minimal => &CliSwitch::ALL,
        }
    }

    /// The lowercase name used in config files, the environment and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            CliProfile::Default => "default",
            CliProfile::Lean => "lean",
            CliProfile::Minimal => "minimal",
        }
    }
}

impl fmt::Display for CliProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is not `default`, `lean` or `minimal`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CLI profile {0:?}; expected default, lean or minimal")]
pub struct UnknownProfile(pub String);

impl FromStr for CliProfile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(CliProfile::Default),
            "lean" => Ok(CliProfile::Lean),
            "minimal" => Ok(CliProfile::Minimal),
            other => Err(UnknownProfile(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lean_changes_nothing_minimal_adds_the_rest() {
        assert!(CliProfile::Default.switches().is_empty());
        assert!(CliProfile::Lean
            .switches()
            .iter()
            .all(|s| !s.changes_behaviour()));
        assert_eq!(CliProfile::Minimal.switches(), &CliSwitch::ALL);
        for p in [CliProfile::Default, CliProfile::Lean, CliProfile::Minimal] {
            assert_eq!(p.as_str().parse::<CliProfile>(), Ok(p));
        }
        assert!("fast".parse::<CliProfile>().is_err());
    }
}
