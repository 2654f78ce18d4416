//! The CLI process: spawn, stdin writer, stdout line reader, stderr capture, shutdown.
//!
//! The process runs in its own process group, without a shell, with an explicit cwd and
//! environment. Stdout is split into lines with a hard per-line cap (a longer line is
//! skipped and reported, memory stays bounded). Stderr is always drained into a bounded
//! tail and an optional callback, so a chatty CLI never blocks on a full pipe. Shutdown
//! closes stdin, waits a grace period, then signals the whole group and reaps it; a
//! dropped transport kills the group. What the lines mean is `session`'s business.

use std::{
    collections::VecDeque,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use process_wrap::tokio::{ProcessGroup, TokioChildWrapper, TokioCommandWrap};
use tokio::{
    io::AsyncWriteExt,
    process::{ChildStderr, ChildStdout},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_util::codec::{Decoder, FramedRead};

mod parent_death;

/// The sandbox seen from the transport: nothing off Linux but the policy check.
mod confine {
    use std::path::Path;

    use process_wrap::tokio::TokioCommandWrap;

    use crate::error::Result;
    use crate::options::Options;
    #[cfg(not(target_os = "linux"))]
    use crate::{error::ExitInfo, sandbox::LimitKind};

    #[cfg(target_os = "linux")]
    pub(crate) use crate::sandbox::linux::{Guard, Prepared};

    #[cfg(target_os = "linux")]
    pub(crate) async fn prepare(cli: &Path, opts: &Options) -> Result<Option<Prepared>> {
        let req = crate::sandbox::SpawnRequest {
            sandbox: opts.confinement.as_ref(),
            limits: opts.resource_limits.as_ref(),
            cwd: opts.cwd.clone(),
            sandbox_config_dir: opts.sandbox_config_dir(),
            cli_config_dir: opts.cli_config_dir(),
        };
        crate::sandbox::linux::prepare(cli, req).await
    }

    /// Adds the child setup to the command; the guard to keep while the CLI runs.
    #[cfg(target_os = "linux")]
    pub(crate) fn install(wrap: &mut TokioCommandWrap, prepared: Option<Prepared>) -> Guard {
        match prepared {
            Some(p) => {
                if !p.child.is_empty() {
                    wrap.wrap(p.child);
                }
                p.guard
            }
            None => Guard::default(),
        }
    }

    /// Off Linux: what a spawn prepares (never anything).
    #[cfg(not(target_os = "linux"))]
    pub(crate) struct Prepared {
        pub(crate) program: std::path::PathBuf,
        pub(crate) prefix: Vec<std::ffi::OsString>,
        pub(crate) cwd: Option<std::path::PathBuf>,
        pub(crate) env: Vec<(String, std::ffi::OsString)>,
    }

    /// Off Linux: nothing to guard.
    #[cfg(not(target_os = "linux"))]
    #[derive(Debug, Default)]
    pub(crate) struct Guard;

    #[cfg(not(target_os = "linux"))]
    impl Guard {
        pub(crate) fn check_now(&self) -> Option<LimitKind> {
            None
        }

        pub(crate) fn limit_hit(&self, _exit: &ExitInfo, _stderr: &str) -> Option<LimitKind> {
            None
        }
    }

    /// Off Linux: confinement or limits are refused, or downgraded with a warning.
    #[cfg(not(target_os = "linux"))]
    pub(crate) async fn prepare(_cli: &Path, opts: &Options) -> Result<Option<Prepared>> {
        use crate::sandbox::Fallback;
        let policies = opts
            .confinement
            .iter()
            .map(|s| s.fallback)
            .chain(opts.resource_limits.iter().map(|l| l.fallback));
        for policy in policies {
            match policy {
                Fallback::Downgrade => tracing::warn!(
                    "confinement and resource limits need Linux; running the claude CLI without them"
                ),
                _ => {
                    return Err(crate::error::Error::SandboxUnavailable {
                        missing: "confinement and resource limits are only built for Linux".into(),
                        fix: "run on Linux, or drop Options::confine / Options::resource_limits \
                              (or set their fallback to Downgrade)"
                            .into(),
                    })
                }
            }
        }
        Ok(None)
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn install(_wrap: &mut TokioCommandWrap, _prepared: Option<Prepared>) -> Guard {
        Guard
    }
}

use crate::error::{Error, ExitInfo, LimitKind, Result};
use crate::options::{Options, StderrCallback};

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;
/// Longest stderr line kept whole; longer ones are cut.
const STDERR_LINE_CAP: usize = 64 * 1024;
/// Read buffer for stdout: large reads keep syscalls few under floods.
const STDOUT_READ_CAPACITY: usize = 256 * 1024;

/// One item of the stdout line stream.
#[derive(Debug)]
pub(crate) enum Line {
    /// A complete line without its `\n`.
    Data(Bytes),
    /// A line longer than the cap was discarded.
    TooLong,
}

/// Splits bytes into `\n`-terminated lines, each at most `max` bytes. An over-long line
/// yields one [`Line::TooLong`] and its bytes are discarded as they arrive, so the
/// buffer never holds more than `max` plus one read.
#[derive(Debug)]
pub(crate) struct LineCodec {
    max: usize,
    /// Bytes of the buffer already known to contain no newline.
    scanned: usize,
    discarding: bool,
}

impl LineCodec {
    pub(crate) fn new(max: usize) -> Self {
        LineCodec {
            max,
            scanned: 0,
            discarding: false,
        }
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Line>> {
        loop {
            let newline = memchr::memchr(b'\n', &buf[self.scanned..]);
            match (newline, self.discarding) {
                (Some(i), true) => {
                    buf.advance(self.scanned + i + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (Some(i), false) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    if end > self.max {
                        buf.advance(end + 1);
                        return Ok(Some(Line::TooLong));
                    }
                    let mut line = buf.split_to(end + 1);
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    return Ok(Some(Line::Data(line.freeze())));
                }
                (None, true) => {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                (None, false) if buf.len() > self.max => {
                    buf.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(Some(Line::TooLong));
                }
                (None, false) => {
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Line>> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        // A final line without newline (a crash mid-line): hand it over as is; the
        // parser rejects it if it is truncated JSON.
        self.scanned = 0;
        if buf.is_empty() || self.discarding {
            buf.clear();
            return Ok(None);
        }
        Ok(Some(Line::Data(buf.split().freeze())))
    }
}

/// The last bytes the CLI wrote to stderr, shared between the drain task and the session.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail {
    inner: Arc<Mutex<TailBuf>>,
}

#[derive(Debug, Default)]
struct TailBuf {
    lines: VecDeque<String>,
    bytes: usize,
    cap: usize,
}

impl StderrTail {
    fn new(cap: usize) -> Self {
        StderrTail {
            inner: Arc::new(Mutex::new(TailBuf {
                cap,
                ..TailBuf::default()
            })),
        }
    }

    fn push(&self, line: &str) {
        let Ok(mut t) = self.inner.lock() else { return };
        let mut line = line.to_string();
        if line.len() > t.cap {
            let mut cut = line.len() - t.cap;
            while !line.is_char_boundary(cut) {
                cut += 1;
            }
            line.drain(..cut);
        }
        t.bytes += line.len();
        t.lines.push_back(line);
        while t.bytes > t.cap {
            match t.lines.pop_front() {
                Some(old) => t.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// The kept lines, joined with newlines.
    pub(crate) fn text(&self) -> String {
        self.inner
            .lock()
            .map(|t| {
                t.lines
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// A running CLI process.
pub(crate) struct Transport {
    child: Box<dyn TokioChildWrapper>,
    /// Lines of stdout; `None` at EOF.
    pub(crate) stdout: FramedRead<ChildStdout, LineCodec>,
    writer: Option<mpsc::Sender<Bytes>>,
    writer_task: Option<JoinHandle<()>>,
    stderr: StderrTail,
    stderr_task: Option<JoinHandle<()>>,
    exit: Option<ExitInfo>,
    pid: Option<u32>,
    max_line_bytes: usize,
    /// The confinement state (forwarder, cgroup watcher), dropped after the CLI.
    guard: confine::Guard,
}

impl Transport {
    /// Spawns `cli` with the options' argv, env and cwd, in a new process group.
    /// On Linux the kernel kills it when this process dies (see `parent_death`).
    pub(crate) async fn spawn(cli: &Path, opts: &Options) -> Result<Transport> {
        let confined = confine::prepare(cli, opts).await?;
        let (program, prefix, cwd, extra_env) = match &confined {
            Some(c) => (
                c.program.clone(),
                c.prefix.clone(),
                c.cwd.clone(),
                c.env.clone(),
            ),
            None => (cli.to_path_buf(), Vec::new(), opts.cwd.clone(), Vec::new()),
        };
        let mut wrap = TokioCommandWrap::with_new(&program, |cmd| {
            cmd.args(&prefix)
                .args(opts.to_args())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(keep) = opts.allow_listed_env(std::env::vars_os()) {
                cmd.env_clear();
                cmd.envs(keep);
            }
            for (key, value) in opts.to_env() {
                match value {
                    Some(v) => cmd.env(key, v),
                    None => cmd.env_remove(key),
                };
            }
            for (key, value) in &extra_env {
                cmd.env(key, value);
            }
            if let Some(dir) = &cwd {
                cmd.current_dir(dir).env("PWD", dir);
            }
        });
        wrap.wrap(ProcessGroup::leader());
        let guard = confine::install(&mut wrap, confined);
        let mut child = parent_death::spawn(wrap)
            .await
            .map_err(|source| Error::Spawn {
                path: program,
                source,
            })?;
        let missing = || Error::Io(std::io::Error::other("child stdio pipe missing"));
        let stdin = child.stdin().take().ok_or_else(missing)?;
        let stdout = child.stdout().take().ok_or_else(missing)?;
        let stderr = child.stderr().take().ok_or_else(missing)?;
        let pid = child.id();

        let (writer, rx) = mpsc::channel::<Bytes>(64);
        let writer_task = tokio::spawn(write_lines(stdin, rx));
        let tail = StderrTail::new(opts.stderr_tail_bytes);
        let stderr_task = tokio::spawn(drain_stderr(
            stderr,
            tail.clone(),
            opts.stderr_callback.clone(),
        ));
        Ok(Transport {
            child,
            stdout: FramedRead::with_capacity(
                stdout,
                LineCodec::new(opts.max_line_bytes),
                STDOUT_READ_CAPACITY,
            ),
            writer: Some(writer),
            writer_task: Some(writer_task),
            stderr: tail,
            stderr_task: Some(stderr_task),
            exit: None,
            pid,
            max_line_bytes: opts.max_line_bytes,
            guard,
        })
    }

    /// The CLI's process id (also its process group id).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The stdout line cap in bytes.
    pub(crate) fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Queues one line (which must end in `\n`) for stdin.
    pub(crate) async fn send(&self, line: impl Into<Bytes>) -> Result<()> {
        let closed = || Error::closed("stdin of the claude CLI is closed");
        let writer = self.writer.as_ref().ok_or_else(closed)?;
        writer.send(line.into()).await.map_err(|_| closed())
    }

    /// A sender for stdin lines, for tasks that answer control requests.
    pub(crate) fn writer(&self) -> Option<mpsc::Sender<Bytes>> {
        self.writer.clone()
    }

    /// The stderr tail collected so far, after letting the drain task finish (bounded).
    pub(crate) async fn stderr_tail(&mut self) -> String {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
        self.stderr.text()
    }

    /// Waits (up to `timeout`) for the CLI to exit and returns how it ended.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitInfo> {
        if self.exit.is_some() {
            return self.exit.clone();
        }
        if let Ok(Ok(status)) = tokio::time::timeout(timeout, self.child.inner_mut().wait()).await {
            self.exit = Some(ExitInfo::from_status(status));
        }
        self.exit.clone()
    }

    /// The error describing an unexpected exit: status (waiting up to 1 s for it) and
    /// stderr tail.
    pub(crate) async fn exit_error(&mut self) -> Error {
        self.kill_group();
        let exit = self
            .wait_exit(Duration::from_secs(1))
            .await
            .unwrap_or(ExitInfo::Unknown);
        let stderr = self.stderr_tail().await;
        match self.guard.limit_hit(&exit, &stderr) {
            Some(kind) => Error::ResourceLimit { kind },
            None => Error::ProcessExited { exit, stderr },
        }
    }

    /// The resource limit the CLI's cgroup hit so far, read now (see
    /// `sandbox::linux::Guard::check_now`): a hit ends the CLI.
    pub(crate) fn limit_hit_now(&self) -> Option<LimitKind> {
        self.guard.check_now()
    }

    fn kill_group(&mut self) {
        // ESRCH when the group is already gone: nothing to do.
        let _ = self.child.signal(SIGKILL);
    }

    /// Graceful stop: close stdin, give the CLI `grace` to exit (it flushes its
    /// transcript), then SIGTERM and SIGKILL the whole group and reap it.
    pub(crate) async fn shutdown(&mut self, grace: Duration) -> Option<ExitInfo> {
        self.writer.take();
        if let Some(task) = self.writer_task.take() {
            // The writer drops stdin when its channel closes; don't wait on a stuck write.
            let _ = tokio::time::timeout(grace, task).await;
        }
        if self.wait_exit(grace).await.is_none() {
            tracing::debug!(
                pid = self.pid,
                "claude CLI did not exit after stdin closed; sending SIGTERM"
            );
            let _ = self.child.signal(SIGTERM);
            if self.wait_exit(Duration::from_secs(2)).await.is_none() {
                self.kill_group();
                self.wait_exit(Duration::from_secs(5)).await;
            }
        }
        // Helpers the CLI left in its group (tool processes, MCP servers) go too.
        self.kill_group();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), Box::into_pin(self.child.wait())).await;
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
        self.exit.clone()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        if self.exit.is_none() || self.writer.is_some() {
            // Dropped without shutdown (a panic, an aborted task): never leave the group
            // running. Tokio reaps the killed leader in the background.
            self.kill_group();
        }
        if let Some(task) = self.writer_task.take() {
            task.abort();
        }
    }
}

async fn write_lines(mut stdin: tokio::process::ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(line) = rx.recv().await {
        if let Err(e) = stdin.write_all(&line).await {
            tracing::debug!(error = %e, "writing to claude CLI stdin failed");
            return;
        }
        // Flush only when nothing else is queued: one syscall per burst.
        if rx.is_empty() && stdin.flush().await.is_err() {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

async fn drain_stderr(stderr: ChildStderr, tail: StderrTail, callback: Option<StderrCallback>) {
    let mut lines = FramedRead::new(stderr, LineCodec::new(STDERR_LINE_CAP));
    while let Some(Ok(line)) = lines.next().await {
        let Line::Data(bytes) = line else {
            tail.push("[stderr line too long, skipped]");
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Some(cb) = &callback {
            cb(&text);
        }
        tracing::trace!(target: "claude_code::stderr", line = %text);
        tail.push(&text);
    }
}

#[cfg(test)]
mod framing_props;

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, chunks: &[&[u8]]) -> Vec<String> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).expect("decode") {
                out.push(match line {
                    Line::Data(b) => String::from_utf8_lossy(&b).into_owned(),
                    Line::TooLong => "<too long>".into(),
                });
            }
        }
        if let Some(Line::Data(b)) = codec.decode_eof(&mut buf).expect("eof") {
            out.push(format!("<eof>{}", String::from_utf8_lossy(&b)));
        }
        out
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let mut c = LineCodec::new(100);
        assert_eq!(
            decode_all(&mut c, &[b"{\"a\":", b"1}\n{\"b\"", b":2}\r\n\n"]),
            ["{\"a\":1}", "{\"b\":2}", ""]
        );
    }

    #[test]
    fn over_long_line_is_reported_once_and_skipped_without_buffering_it() {
        let mut c = LineCodec::new(10);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"0123456789ABCDEF");
        assert!(matches!(
            c.decode(&mut buf).expect("decode"),
            Some(Line::TooLong)
        ));
        assert!(buf.is_empty(), "discarded bytes are not kept");
        buf.extend_from_slice(b"more junk");
        assert!(c.decode(&mut buf).expect("decode").is_none());
        assert!(buf.is_empty());
        buf.extend_from_slice(b"tail\nok\n");
        match c.decode(&mut buf).expect("decode") {
            Some(Line::Data(b)) => assert_eq!(&b[..], b"ok"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn over_long_line_arriving_whole_is_skipped() {
        let mut c = LineCodec::new(4);
        assert_eq!(decode_all(&mut c, &[b"123456\nab\n"]), ["<too long>", "ab"]);
    }

    #[test]
    fn partial_last_line_is_returned_at_eof() {
        let mut c = LineCodec::new(100);
        assert_eq!(decode_all(&mut c, &[b"a\n{\"half"]), ["a", "<eof>{\"half"]);
    }

    #[test]
    fn stderr_tail_keeps_the_newest_bytes() {
        let t = StderrTail::new(10);
        t.push("first line");
        t.push("abc");
        t.push("def");
        assert_eq!(t.text(), "abc\ndef");
        t.push("a very long line indeed");
        assert_eq!(t.text(), "ine indeed");
    }
}
