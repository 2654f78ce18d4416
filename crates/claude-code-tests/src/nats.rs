//! A real `nats-server` with JetStream for the cluster tests: on loopback, on a free port,
//! with its store in a temporary directory, killed (and waited for) on drop. Outage tests
//! [`kill`](NatsServer::kill) it with SIGKILL and [`restart`](NatsServer::restart) it on
//! the same port with the same store.
//!
//! `scripts/install-nats` installs Debian's `nats-server`; without it [`NatsServer::start`]
//! panics with that fix, so the cluster tests fail, they never skip.

use std::{
    io::{BufRead, BufReader},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running `nats-server -js` on 127.0.0.1.
pub struct NatsServer {
    child: Child,
    port: u16,
    /// JetStream's store directory (removed on drop).
    store: tempfile::TempDir,
    /// The directory of the configuration file, for [`NatsServer::start_with`].
    _config: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .finish()
    }
}

/// The `nats-server` program: `$NATS_SERVER`, else `nats-server` in `PATH` or `/usr/sbin`
/// (where Debian puts it). Panics with the fix when it is missing.
pub fn nats_server_program() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("nats-server is not installed: run scripts/install-nats (or set NATS_SERVER)");
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port and waits (bounded) until it
    /// accepts clients with JetStream on.
    pub fn start() -> NatsServer {
        Self::launch(None)
    }

    /// As [`start`](Self::start), with a configuration file of `config` (nats-server's
    /// format, e.g. `authorization { user: a, password: b }` or `tls { cert_file: ..,
    /// key_file: .. }`) given with `-c`; the address, port and JetStream come from the
    /// command line as for `start`.
    pub fn start_with(config: &str) -> NatsServer {
        let dir = tempfile::tempdir().expect("nats-server config dir");
        let file = dir.path().join("nats-server.conf");
        std::fs::write(&file, config).expect("write the nats-server config");
        Self::launch(Some((dir, file)))
    }

    fn launch(config: Option<(tempfile::TempDir, PathBuf)>) -> NatsServer {
        let program = nats_server_program();
        let (config_dir, config_file) = match config {
            Some((dir, file)) => (Some(dir), Some(file)),
            None => (None, None),
        };
        let mut config_dir = config_dir;
        let mut store = tempfile::tempdir().expect("JetStream store dir");
        // A port the kernel just handed out; a rare collision fails the start and is
        // retried with another.
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let file = config_file.as_deref();
            let child = spawn(&program, port, &store, file);
            let mut server = NatsServer {
                child,
                port,
                store,
                _config: config_dir.take(),
            };
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
            let _ = server.child.kill();
            let _ = server.child.wait();
            store = std::mem::replace(
                &mut server.store,
                tempfile::tempdir().expect("JetStream store dir"),
            );
            config_dir = server._config.take();
        }
        panic!("nats-server did not come up with JetStream on loopback after 5 tries");
    }

    /// Kills the server with SIGKILL (no clean shutdown, as a crash) and waits for it to
    /// end. Its store stays for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same JetStream store (after
    /// [`kill`](Self::kill); a running one is killed first) and waits (bounded) until it
    /// accepts clients with JetStream on. Panics when it does not come up.
    pub fn restart(&mut self) {
        self.kill();
        let program = nats_server_program();
        // The port was just freed; a client reconnecting can not hold it (it connects
        // from an ephemeral port), so a bind failure is retried briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let file = self
                ._config
                .as_ref()
                .map(|dir| dir.path().join("nats-server.conf"));
            self.child = spawn(&program, self.port, &self.store, file.as_deref());
            if self.wait_ready(Duration::from_secs(10)) {
                return;
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            assert!(
                Instant::now() < deadline,
                "nats-server did not come back on port {} with its store",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// True once a client connection gets the server's `INFO` line with JetStream on;
    /// false when the process ended or `within` passed.
    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok()
                    && line.starts_with("INFO ")
                    && line.contains("\"jetstream\":true")
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `nats-server -js` on 127.0.0.1:`port` with its store in `store` (and the
/// configuration file `config`, when given).
fn spawn(
    program: &std::path::Path,
    port: u16,
    store: &tempfile::TempDir,
    config: Option<&std::path::Path>,
) -> Child {
    let mut command = Command::new(program);
    if let Some(file) = config {
        command.arg("-c").arg(file);
    }
    command
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
