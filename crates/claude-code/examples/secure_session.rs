//! One session run the way `claude-code serve` runs each of its sessions: the API key held
//! by a credential proxy (the CLI gets a per-session token), a minimal environment,
//! bubblewrap confinement with the network forwarded to the proxy only, resource limits,
//! and every tool use and decision printed as an audit event.
//!
//! `cargo run -p claude-code-host --example secure_session --features proxy`. Offline (no
//! `ANTHROPIC_API_KEY`), the mock API makes the real CLI run one Bash command that writes
//! to `/etc` (refused: the host's tree is read-only) and into its work dir (allowed).
//! Where bubblewrap, namespaces or cgroups are missing, confinement and limits are
//! downgraded with a warning (`Fallback::Downgrade`); use `Fallback::Error` to refuse.
//! Guide: `docs/guides/security.md`.

#[path = "common/offline.rs"]
mod offline;

use claude_code::{
    audit::AuditEvent,
    proxy::{Credential, CredentialProxy, ProxyConfig, SessionGrant, DEFAULT_UPSTREAM},
    sandbox::{Fallback, Network, ResourceLimits, Sandbox},
    Options, PermissionResult, Session,
};
use claude_code_mock::{Reply, Script};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock plays the model: these are its replies, in order.
    let script = Script::new()
        .reply(Reply::tool_use(
            "Bash",
            json!({
                "command": "echo hi > /etc/claude-demo; echo ok > inside.txt && cat inside.txt",
                "description": "Write outside and inside the work dir",
            }),
        ))
        .fallback(Reply::text(
            "/etc is read-only here; inside.txt is written.",
        ));
    let env = offline::Offline::start(script).await?;

    // The real credential stays in this process, inside the proxy.
    let (credential, upstream) = match env.mock_url() {
        Some(url) => (Credential::api_key("sk-offline-mock"), url),
        None => (
            Credential::from_env().ok_or("no ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN")?,
            DEFAULT_UPSTREAM.to_string(),
        ),
    };
    let proxy = CredentialProxy::start(ProxyConfig::new(credential).upstream(upstream)).await?;
    let grant = proxy.grant(SessionGrant::new("demo").max_spend_usd(1.0))?;

    let work = env.workdir().join("work");
    let sandbox = Sandbox::new(&work)
        .network(Network::forward(proxy.addr()))
        .fallback(Fallback::Downgrade);
    let limits = ResourceLimits::new()
        .memory_bytes(2 << 30)
        .pids(256)
        .open_files(4096)
        .fallback(Fallback::Downgrade);
    let options = env
        .options(Options::new())
        .minimal_env()
        // The confinement is the guard here: allow every tool (each decision is audited).
        .can_use_tool(|_request| async { PermissionResult::allow() })
        .confine(sandbox)
        .resource_limits(limits)
        .audit(|event: &AuditEvent| {
            // Sinks must be quick: print, or hand the event to a channel.
            println!(
                "audit: {}",
                serde_json::to_string(event).unwrap_or_default()
            );
        });
    // Last: the proxy's URL and the session's token replace the key in the child's env.
    let options = grant.apply(options);

    let session = Session::start(options).await?;
    let summary = session
        .stream("Write to /etc, then to a file in your work dir.")
        .await?
        .collect()
        .await?;
    for call in &summary.tool_calls {
        println!(
            "tool {} (error: {}): {:?}",
            call.tool_use.name, call.is_error, call.result
        );
    }
    println!("answer: {}", summary.text);
    let usage = grant.usage();
    println!("the proxy saw {usage:?}");
    session.stop().await?;
    Ok(())
}
