//! Callbacks survive restarts: a supervised child whose CLI is killed with `kill -9` is
//! restarted with the same [`Options`](claude_code::Options), so the new CLI repeats the
//! initialize handshake with the same hooks and the SDK keeps answering them. Real CLI
//! against the mock API; waits on observable state only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claude_code::{ChildStatus, HookEvent, HookInput, HookOutput, SessionSpec, Supervisor};
use claude_code_tests::{ask, assert_tool_result, kill_9, Reply, Script, TestEnv};
use serde_json::json;

#[tokio::test]
async fn hooks_still_fire_after_a_kill_9_restart() {
    let env = TestEnv::new(Script::new()).await;
    let first = env.cwd.path().join("first.txt");
    let second = env.cwd.path().join("second.txt");
    let touch = |path: &std::path::Path| {
        Reply::tool_use(
            "Bash",
            json!({"command": format!("touch {}", path.display()), "description": "touch"}),
        )
    };
    env.mock.push(touch(&first));
    env.mock.push(Reply::text("first done"));

    let seen: Arc<Mutex<Vec<HookInput>>> = Arc::default();
    let log = seen.clone();
    let options = env.options().allowed_tools(["Bash"]).hook(
        HookEvent::PreToolUse,
        Some("Bash"),
        move |input| {
            let log = log.clone();
            async move {
                log.lock().expect("lock").push(input);
                HookOutput::deny("hooks say no")
            }
        },
    );
    let sup = Supervisor::builder()
        .name("hooks")
        .child(SessionSpec::new("agent").options(options))
        .start()
        .await
        .expect("start");
    let agent = sup.session("agent");

    let text = ask(&agent, "touch the first file").await;
    assert_eq!(text, "first done");
    assert_eq!(seen.lock().expect("lock").len(), 1, "the hook fired once");

    let old_pid = agent.pid().await.expect("pid").expect("some");
    kill_9(old_pid);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = sup.list_sessions().await.expect("list");
        if list
            .iter()
            .any(|c| c.name == "agent" && c.restarts == 1 && c.status == ChildStatus::Running)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no restart: {list:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(agent.pid().await.expect("pid"), Some(old_pid));

    env.mock.push(touch(&second));
    env.mock.push(Reply::text("second done"));
    let text = agent
        .stream("touch the second file")
        .await
        .expect("the handle works after the restart")
        .final_text()
        .await
        .expect("second turn");
    assert_eq!(text, "second done");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "the hook fired again after the restart");
    assert_eq!(seen[1].event, "PreToolUse");
    assert_eq!(seen[1].tool_name.as_deref(), Some("Bash"));
    assert!(!first.exists() && !second.exists(), "both denied");
    assert_tool_result(
        env.mock.turn_requests().last().expect("a turn request"),
        "hooks say no",
    );
    sup.stop().await.expect("stop");
}
