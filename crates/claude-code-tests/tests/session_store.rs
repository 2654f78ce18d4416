//! Session stores with the real CLI: transcripts saved after each turn and restored
//! before a resume, so a session survives the loss of its local files.

use std::sync::Arc;
use std::time::Duration;

use claude_code::{
    history::History,
    store::{DirectoryStore, SessionFiles, SessionStore, StoreError, StoreFuture},
    Error, Session,
};
use claude_code_tests::{ask, Reply, Script, TestEnv};
use tokio::sync::mpsc;

/// A store that keeps transcripts in a [`DirectoryStore`] and reports each save.
struct Reporting {
    inner: DirectoryStore,
    saved: mpsc::UnboundedSender<String>,
}

impl SessionStore for Reporting {
    fn save<'a>(&'a self, session_id: &'a str, files: SessionFiles) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let text = String::from_utf8_lossy(&files.transcript).into_owned();
            self.inner.save(session_id, files).await?;
            let _ = self.saved.send(text);
            Ok(())
        })
    }

    fn load<'a>(&'a self, session_id: &'a str) -> StoreFuture<'a, Option<SessionFiles>> {
        self.inner.load(session_id)
    }
}

/// A store whose every call fails.
struct Broken;

impl SessionStore for Broken {
    fn save<'a>(&'a self, _: &'a str, _: SessionFiles) -> StoreFuture<'a, ()> {
        Box::pin(async { Err(StoreError::backend("the bucket is on fire")) })
    }

    fn load<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<SessionFiles>> {
        Box::pin(async { Err(StoreError::backend("the bucket is on fire")) })
    }
}

/// Waits (bounded) for a reported save whose transcript contains `needle`.
async fn saved_with(saves: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    let wait = async {
        while let Some(text) = saves.recv().await {
            if text.contains(needle) {
                return text;
            }
        }
        panic!("the store went away before a save containing {needle:?}")
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("no save containing {needle:?} within 60 s"))
}

#[tokio::test]
async fn a_session_resumes_from_the_store_after_its_local_files_are_gone() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let store_dir = tempfile::tempdir().expect("store dir");
    let store: Arc<dyn SessionStore> = Arc::new(DirectoryStore::new(store_dir.path()));

    // Session 1 in config dir A.
    let first = Session::start(env.options().session_store(store.clone()))
        .await
        .expect("start");
    ask(&first, "remember the word kumquat").await;
    let id = first.session_id().expect("id");
    first.stop().await.expect("stop");
    assert!(
        store_dir.path().join(format!("{id}.jsonl")).is_file(),
        "saved by the time stop() returned"
    );

    // Config dir A is gone entirely; session 2 runs with a fresh config dir B.
    std::fs::remove_dir_all(env.config.path()).expect("delete config dir A");
    let config_b = tempfile::tempdir().expect("config dir B");
    let options = env
        .options()
        .env("CLAUDE_CONFIG_DIR", config_b.path().to_string_lossy())
        .resume(&id)
        .session_store(store.clone());
    let resumed = Session::start(options)
        .await
        .expect("resume from the store");
    let text = ask(&resumed, "what was the word?").await;
    assert_eq!(text, "echo: what was the word?");
    assert_eq!(resumed.session_id().as_deref(), Some(id.as_str()));
    let sent = env
        .mock
        .turn_requests()
        .last()
        .expect("request")
        .user_texts();
    assert!(
        sent.contains(&"remember the word kumquat".to_string()),
        "the first turn's prompt went to the model: {sent:?}"
    );
    resumed.stop().await.expect("stop");

    // B now holds the whole conversation, and so does the store.
    let history = History::new(config_b.path());
    assert_eq!(
        history.read(env.cwd.path(), &id).expect("read").prompts(),
        ["remember the word kumquat", "what was the word?"]
    );
    let saved = store.load(&id).await.expect("load").expect("saved");
    assert!(String::from_utf8_lossy(&saved.transcript).contains("what was the word?"));
}

#[tokio::test]
async fn the_transcript_is_saved_after_each_turn() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let store_dir = tempfile::tempdir().expect("store dir");
    let (tx, mut saves) = mpsc::unbounded_channel();
    let store = Arc::new(Reporting {
        inner: DirectoryStore::new(store_dir.path()),
        saved: tx,
    });
    let session = Session::start(env.options().session_store(store))
        .await
        .expect("start");
    ask(&session, "the first turn").await;
    // Saved while the session (and its CLI) still runs.
    let text = saved_with(&mut saves, "the first turn").await;
    assert!(text.ends_with('\n'), "complete lines only");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every saved line is JSON");
    }
    ask(&session, "the second turn").await;
    saved_with(&mut saves, "the second turn").await;
    assert!(!session.is_closed());
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_failing_store_never_fails_a_running_session() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let broken: Arc<dyn SessionStore> = Arc::new(Broken);
    let session = Session::start(env.options().session_store(broken.clone()))
        .await
        .expect("start");
    assert_eq!(ask(&session, "one").await, "echo: one");
    assert_eq!(ask(&session, "two").await, "echo: two");
    let id = session.session_id().expect("id");
    session.stop().await.expect("stop despite failed saves");

    // Resuming a session that is on disk does not ask the store.
    let resumed = Session::start(env.options().resume(&id).session_store(broken.clone()))
        .await
        .expect("the local transcript wins");
    ask(&resumed, "three").await;
    resumed.stop().await.expect("stop");

    // One that is not on disk needs the store, and its error is the start's.
    let elsewhere = tempfile::tempdir().expect("config dir");
    let options = env
        .options()
        .env("CLAUDE_CONFIG_DIR", elsewhere.path().to_string_lossy())
        .resume(&id)
        .session_store(broken);
    match Session::start(options).await {
        Err(Error::SessionStore(StoreError::Backend(e))) => {
            assert!(e.to_string().contains("on fire"), "{e}")
        }
        other => panic!("expected the store's error, got {other:?}"),
    }
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn subagent_transcripts_travel_with_the_session() {
    let agent_call = Reply::tool_use(
        "Agent",
        serde_json::json!({
            "description": "look around",
            "prompt": "the delegated task",
            "subagent_type": "general-purpose",
            "run_in_background": false
        }),
    );
    let env = TestEnv::new(
        Script::new()
            .reply(agent_call)
            .reply(Reply::text("the subagent's answer"))
            .fallback(Reply::echo()),
    )
    .await;
    let store_dir = tempfile::tempdir().expect("store dir");
    let store: Arc<dyn SessionStore> = Arc::new(DirectoryStore::new(store_dir.path()));
    let session = Session::start(
        env.options()
            .allowed_tools(["Agent"])
            .session_store(store.clone()),
    )
    .await
    .expect("start");
    ask(&session, "delegate something").await;
    let id = session.session_id().expect("id");
    session.stop().await.expect("stop");
    let saved = store.load(&id).await.expect("load").expect("saved");
    assert!(
        saved
            .sidecars
            .iter()
            .any(|(path, _)| path.starts_with("subagents/agent-") && path.ends_with(".jsonl")),
        "{:?}",
        saved.sidecars.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );

    let fresh = tempfile::tempdir().expect("config dir");
    let options = env
        .options()
        .env("CLAUDE_CONFIG_DIR", fresh.path().to_string_lossy())
        .resume(&id)
        .session_store(store);
    let resumed = Session::start(options).await.expect("resume");
    resumed.stop().await.expect("stop");
    let history = History::new(fresh.path());
    let agents = history.subagents(&id).expect("restored subagents");
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(
        history
            .read_subagent(&id, &agents[0].agent_id)
            .expect("read")
            .prompts(),
        ["the delegated task"]
    );
}
