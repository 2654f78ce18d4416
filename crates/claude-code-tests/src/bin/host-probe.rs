//! `host-probe`: a minimal host process for tests that kill the host. It starts one
//! session on the CLI named by `CLAUDE_CODE_CLI` (cwd and environment inherited: the
//! test points them at its mock), prints `cli <pid>` once the session is ready, then
//! with `HOST_PROBE_TURN=1` starts a turn (Bash allowed) and prints `turn` once the
//! turn's stream is open. It then waits forever, or with `HOST_PROBE_PANIC=1` panics
//! once the turn is open (the default panic strategy unwinds: destructors run).

use std::io::Write;

use claude_code::{Options, Session};

#[tokio::main]
async fn main() {
    let session = Session::start(Options::new().allowed_tools(["Bash"]))
        .await
        .unwrap_or_else(|e| panic!("host-probe: start failed: {e}"));
    say(&format!("cli {}", session.pid().unwrap_or(0)));
    let mut stream = None;
    if std::env::var_os("HOST_PROBE_TURN").is_some() {
        stream = Some(
            session
                .stream("go")
                .await
                .unwrap_or_else(|e| panic!("host-probe: turn failed: {e}")),
        );
        say("turn");
        if std::env::var_os("HOST_PROBE_PANIC").is_some() {
            panic!("host-probe: panicking mid-turn as asked");
        }
    }
    std::future::pending::<()>().await;
    drop((stream, session));
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
