//! Shared harness for the end-to-end tests and benchmarks: locating the real CLI, a
//! per-test environment (mock API, temp cwd, temp `CLAUDE_CONFIG_DIR`), and process
//! accounting from `/proc` so tests can prove nothing was left behind.
//!
//! The real CLI is found through `CLAUDE_CODE_CLI`, else the project-local install made
//! by `scripts/install-cli`, else `claude` on `PATH`. A missing CLI fails the test with
//! the command to run; it never skips.

use std::{
    fmt::Debug,
    future::Future,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use claude_code::{
    protocol::UserInput, ChildInfo, ChildStatus, CliPath, MessageStream, Options, Pool, Session,
    SupervisedSession, Supervisor,
};
pub use claude_code_mock::{Block, MockServer, RecordedRequest, Reply, Script};

mod nats;
pub use nats::{nats_server_program, NatsServer};
mod netns;
pub use netns::{ip_program, Netns};
mod pki;
pub use pki::{CertFiles, TestPki};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The real `claude` binary the tests run. Panics with the fix when it is missing.
pub fn real_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("CLAUDE_CODE_CLI").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local =
        workspace_root().join(".claude-cli/node_modules/@anthropic-ai/claude-code/bin/claude.exe");
    if local.is_file() {
        return local;
    }
    if let Ok(r) = CliPath::Global.resolve() {
        return r.path;
    }
    panic!(
        "the real claude CLI is not installed: run scripts/install-cli (or set CLAUDE_CODE_CLI)"
    );
}

/// One test's world: a running mock API, its own cwd and config dir, and a marker in the
/// CLI's environment that identifies this test's processes.
pub struct TestEnv {
    /// The mock Messages API.
    pub mock: MockServer,
    /// Working directory for the CLI.
    pub cwd: tempfile::TempDir,
    /// `CLAUDE_CONFIG_DIR` for the CLI.
    pub config: tempfile::TempDir,
    /// `CLAUDE_CODE_TMPDIR` for the CLI: its scratch files (which it does not always
    /// clean up) go away with the test instead of piling up in `/tmp/claude-<uid>`.
    pub tmp: tempfile::TempDir,
    /// Value of `CLAUDE_RS_TEST_MARKER` in every process this test starts.
    pub marker: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl TestEnv {
    /// Starts the mock with `script` and makes fresh directories.
    pub async fn new(script: Script) -> TestEnv {
        let mock = MockServer::start(script).await.expect("mock server starts");
        let marker = format!(
            "claude-rs-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        TestEnv {
            mock,
            cwd: tempfile::tempdir().expect("temp cwd"),
            config: tempfile::tempdir().expect("temp config dir"),
            tmp: tempfile::tempdir().expect("temp scratch dir"),
            marker,
        }
    }

    /// Options for the real CLI against this test's mock.
    pub fn options(&self) -> Options {
        self.options_for(&real_cli())
    }

    /// Options for any CLI binary (the fake one too) with this test's environment.
    pub fn options_for(&self, cli: &Path) -> Options {
        Options::new()
            .cli_path(cli)
            .cwd(self.cwd.path())
            .env("ANTHROPIC_BASE_URL", self.mock.url())
            .env("ANTHROPIC_API_KEY", "sk-test-key")
            .env("CLAUDE_CONFIG_DIR", self.config.path().to_string_lossy())
            .env("CLAUDE_CODE_TMPDIR", self.tmp.path().to_string_lossy())
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_RS_TEST_MARKER", &self.marker)
            .env_remove("ANTHROPIC_AUTH_TOKEN")
    }

    /// Waits (bounded) until nothing this test started is left, then asserts it.
    pub async fn assert_no_leftovers(&self) {
        eventually(Duration::from_secs(15), "no leftover process", || async {
            let left = self.leftovers();
            if left.is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        })
        .await
    }

    /// Processes (zombies included) carrying this test's marker.
    pub fn processes(&self) -> Vec<ProcInfo> {
        processes_with_env(&format!("CLAUDE_RS_TEST_MARKER={}", self.marker))
    }

    /// What this test left behind: live processes with its marker, and zombies this
    /// process failed to reap. (A killed grandchild is briefly a zombie of init, which
    /// reaps it; that is not a leak.)
    pub fn leftovers(&self) -> Vec<ProcInfo> {
        leftovers(self.processes())
    }
}

/// A process seen in `/proc` (the SDK's one `/proc` reader).
pub type ProcInfo = claude_code::procfs::ProcStat;

pub use claude_code::procfs::{peak_rss_kib, rss_kib, stat as proc_info};

fn all_pids() -> Vec<u32> {
    claude_code::procfs::pids()
}

/// Processes whose environment contains `needle` (`KEY=VALUE`), plus zombies in their
/// process groups (a zombie's environment can no longer be read).
pub fn processes_with_env(needle: &str) -> Vec<ProcInfo> {
    let mut found: Vec<ProcInfo> = all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .filter_map(proc_info)
        .collect();
    let groups: Vec<u32> = found.iter().map(|p| p.pgid).collect();
    for pid in all_pids() {
        if let Some(p) = proc_info(pid) {
            if p.state == 'Z' && groups.contains(&p.pgid) && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found
}

/// Drops zombies whose parent is not this process (init reaps those).
pub fn leftovers(procs: Vec<ProcInfo>) -> Vec<ProcInfo> {
    let me = std::process::id();
    procs
        .into_iter()
        .filter(|p| p.state != 'Z' || p.ppid == me)
        .collect()
}

/// Waits (polling `/proc`, bounded by `within`) until `probe` finds nothing left, and
/// returns what remains at the deadline. A process killed with SIGKILL disappears a
/// moment after the signal is sent; this waits for that observable state, nothing else.
pub fn wait_until_gone(
    within: std::time::Duration,
    probe: impl Fn() -> Vec<ProcInfo>,
) -> Vec<ProcInfo> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = probe();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Processes in process group `pgid`, zombies included.
pub fn processes_in_group(pgid: u32) -> Vec<ProcInfo> {
    claude_code::procfs::group(pgid)
}

/// Sends SIGKILL to one process (the CLI leader only, as `kill -9` would).
pub fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
}

/// Re-runs `probe` every 20 ms until it returns `Ok`, for at most `within`; then panics
/// with `what` and the last observation. For waiting on observable state (a restart
/// happened, a process is gone), never on time itself.
pub async fn eventually<T, S, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    S: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(done) => return done,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {seen:#?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Waits (bounded) until the supervisor's children satisfy `done`; returns them.
pub async fn wait_for_children(
    sup: &Supervisor,
    what: &str,
    done: impl Fn(&[ChildInfo]) -> bool,
) -> Vec<ChildInfo> {
    eventually(Duration::from_secs(60), what, || async {
        let list = sup.list_sessions().await.expect("list sessions");
        if done(&list) {
            Ok(list)
        } else {
            Err(list)
        }
    })
    .await
}

/// Waits (bounded) until child `name` runs again after at least `restarts` restarts.
pub async fn wait_restarted(sup: &Supervisor, name: &str, restarts: u32) -> Vec<ChildInfo> {
    wait_for_children(
        sup,
        &format!("{name} restarted {restarts} time(s)"),
        |list| {
            list.iter().any(|c| {
                c.name == name && c.restarts >= restarts && c.status == ChildStatus::Running
            })
        },
    )
    .await
}

/// Anything a test sends prompts to: a [`Session`], a [`SupervisedSession`], a [`Pool`].
pub trait Turns {
    /// Opens one turn, with the error rendered for a test failure message.
    fn open_turn(&self, prompt: UserInput) -> impl Future<Output = Result<MessageStream, String>>;
}

impl Turns for Session {
    async fn open_turn(&self, prompt: UserInput) -> Result<MessageStream, String> {
        self.stream(prompt).await.map_err(|e| e.to_string())
    }
}

impl Turns for SupervisedSession {
    async fn open_turn(&self, prompt: UserInput) -> Result<MessageStream, String> {
        self.stream(prompt).await.map_err(|e| e.to_string())
    }
}

impl Turns for Pool {
    async fn open_turn(&self, prompt: UserInput) -> Result<MessageStream, String> {
        self.stream(prompt).await.map_err(|e| e.to_string())
    }
}

/// Runs one turn to its result and returns the final text; panics (failing the test)
/// with the error otherwise.
pub async fn ask(target: &impl Turns, prompt: impl Into<UserInput>) -> String {
    let prompt = prompt.into();
    let stream = target
        .open_turn(prompt.clone())
        .await
        .unwrap_or_else(|e| panic!("opening a turn for {prompt:?} failed: {e}"));
    stream
        .final_text()
        .await
        .unwrap_or_else(|e| panic!("the turn for {prompt:?} failed: {e}"))
}

/// Asserts that a `tool_result` the CLI sent in `request` contains `needle` (the model
/// saw the tool's output or the denial), printing every tool result otherwise.
pub fn assert_tool_result(request: &RecordedRequest, needle: &str) {
    let results = request.tool_results();
    assert!(
        results.iter().any(|r| r.to_string().contains(needle)),
        "no tool_result contains {needle:?}: {results:#?}"
    );
}
