//! The CLI dies with its host. An idle CLI exits when its stdin closes, but one in the
//! middle of a turn does not notice a host killed with SIGKILL and would run on,
//! re-parented to init. On Linux the kernel ends it instead: each CLI is started with
//! `PR_SET_PDEATHSIG` set to SIGTERM. SIGTERM rather than SIGKILL because the CLI runs
//! its tools (a Bash command) in process groups of their own, which only the CLI knows
//! to end: on SIGTERM the pinned CLI ends them and exits, mid-turn too (tested in
//! `host_death.rs`); a SIGKILL would leave them running.
//!
//! The kernel sends that signal when the *thread* that forked the child exits, not the
//! process. A tokio worker or blocking-pool thread may exit long before the host does,
//! so every CLI is forked from one dedicated thread that lives as long as the process.

use std::{
    io,
    sync::{mpsc, OnceLock},
};

use process_wrap::tokio::{TokioChildWrapper, TokioCommandWrap};

type Job = Box<dyn FnOnce() + Send>;

/// Spawns `wrap` from the long-lived spawner thread, inside the caller's runtime (tokio
/// needs it to reap the child).
pub(crate) async fn spawn(mut wrap: TokioCommandWrap) -> io::Result<Box<dyn TokioChildWrapper>> {
    #[cfg(target_os = "linux")]
    wrap.wrap(linux::ParentDeathSignal);
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _runtime = handle.enter();
        let _ = tx.send(wrap.spawn());
    });
    let gone = || io::Error::other("the claude-code spawner thread is gone");
    spawner().send(job).map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

/// The spawner thread's queue; the thread is started on first use and never exits.
fn spawner() -> &'static mpsc::Sender<Job> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("claude-code-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            });
        if let Err(e) = started {
            // Each spawn then fails with "the spawner thread is gone".
            tracing::error!(error = %e, "cannot start the claude-code spawner thread");
        }
        tx
    })
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux {
    use std::io;

    use nix::{
        sys::{prctl, signal::Signal},
        unistd::{getpid, getppid},
    };
    use process_wrap::tokio::{TokioCommandWrap, TokioCommandWrapper};
    use tokio::process::Command;

    /// Sets `PR_SET_PDEATHSIG` to SIGTERM in the child, between fork and exec.
    #[derive(Debug)]
    pub(super) struct ParentDeathSignal;

    impl TokioCommandWrapper for ParentDeathSignal {
        fn pre_spawn(&mut self, command: &mut Command, _core: &TokioCommandWrap) -> io::Result<()> {
            let parent = getpid();
            // SAFETY: the closure runs in the forked child before exec. It calls only
            // async-signal-safe functions (prctl, getppid), allocates nothing and
            // touches no lock.
            unsafe {
                command.pre_exec(move || {
                    prctl::set_pdeathsig(Signal::SIGTERM)?;
                    // The host died between fork and prctl: the signal will never come.
                    if getppid() != parent {
                        return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
                    }
                    Ok(())
                });
            }
            Ok(())
        }
    }
}
