//! Hosting on one host, end to end with the real CLI against the mock API: pools
//! (concurrency cap, back-pressure), warm spares (no spawn on the request path, no
//! cross-talk), hibernation (the CLI goes, the conversation stays), admission control
//! (a live-CLI cap across named sessions), graceful drain, fresh conversations per
//! request, and the cost of isolated turns. The fake CLI covers the
//! cheap resize loop. No test sleeps to synchronise: each waits on observable state
//! (pool stats, the child list, the process table) with a deadline; a sampler thread
//! records the most CLI processes alive at any moment.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use claude_code::{
    Admission, ChildStatus, Pool, PoolContext, PoolError, PoolStats, SessionSpec, Spares,
    Supervisor,
};
use claude_code_tests::{
    ask, eventually, wait_for_children, wait_until_gone, RecordedRequest, Reply, Script, TestEnv,
};

fn fake_cli() -> &'static Path {
    env!("CARGO_BIN_EXE_fake-claude").as_ref()
}

fn echo() -> Script {
    Script::new().fallback(Reply::echo())
}

/// CLI processes alive now: process-group leaders (each CLI leads its own group; the
/// helpers it forks share that group), zombies excluded.
fn live_clis(env: &TestEnv) -> Vec<u32> {
    env.processes()
        .into_iter()
        .filter(|p| p.pid == p.pgid && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Samples the process table on a thread until dropped; `max()` is the most CLIs seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(env: &TestEnv) -> Sampler {
        let marker = format!("CLAUDE_RS_TEST_MARKER={}", env.marker);
        let (stop, max) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, m) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let n = claude_code_tests::processes_with_env(&marker)
                    .into_iter()
                    .filter(|p| p.pid == p.pgid && p.state != 'Z')
                    .count();
                m.fetch_max(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Sampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls the pool's stats until `done` holds (bounded).
async fn wait_stats(pool: &Pool, what: &str, done: impl Fn(&PoolStats) -> bool) -> PoolStats {
    eventually(Duration::from_secs(60), what, || async {
        let stats = pool.stats().await.expect("stats");
        if done(&stats) {
            Ok(stats)
        } else {
            Err(stats)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_of_three_answers_ten_concurrent_prompts_with_at_most_three_clis() {
    let env = TestEnv::new(echo()).await;
    let sampler = Sampler::start(&env);
    let pool = Pool::builder(SessionSpec::new("worker").options(env.options()))
        .size(3)
        .max_queue(16)
        .start()
        .await
        .expect("pool starts");
    let asks = (0..10).map(|i| {
        let pool = pool.clone();
        async move {
            let text = pool
                .stream(format!("prompt number {i}"))
                .await
                .expect("admitted")
                .final_text()
                .await
                .expect("answered");
            (i, text)
        }
    });
    for (i, text) in futures::future::join_all(asks).await {
        assert_eq!(text, format!("echo: prompt number {i}"));
    }
    // Fresh conversations (the default): no request carries another one's prompt or reply.
    let turns = env.mock.turn_requests();
    assert_eq!(turns.len(), 10);
    for turn in &turns {
        let prompts = turn
            .user_texts()
            .into_iter()
            .filter(|t| t.starts_with("prompt number"))
            .count();
        assert_eq!(prompts, 1, "{:?}", turn.user_texts());
        assert!(
            !turn.body.to_string().contains("echo: prompt number"),
            "{:#?}",
            turn.messages()
        );
    }
    let stats = pool.stats().await.expect("stats");
    assert_eq!(stats.served, 10);
    assert_eq!((stats.inflight, stats.queued, stats.rejected), (0, 0, 0));
    assert_eq!(stats.members.len(), 3);
    assert!(
        stats
            .members
            .iter()
            .all(|m| m.pid.is_some() && m.rss_kib.is_some()),
        "per-CLI pid and RSS are sampled: {stats:#?}"
    );
    assert!(
        stats.members.iter().all(|m| m.served >= 1),
        "round robin spreads: {stats:#?}"
    );
    pool.stop().await.expect("stop");
    let most = sampler.max();
    assert!((1..=3).contains(&most), "at most 3 CLIs alive, saw {most}");
    drop(sampler);
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_an_immediate_typed_error_and_a_long_wait_times_out() {
    // The first turn is held by the mock until its stream is dropped.
    let env = TestEnv::new(
        Script::new()
            .reply(Reply::echo().delay(Duration::from_secs(60)))
            .fallback(Reply::echo()),
    )
    .await;
    let pool = Pool::builder(SessionSpec::new("worker").options(env.options()))
        .size(1)
        .max_queue(1)
        .queue_timeout(Duration::from_millis(800))
        .start()
        .await
        .expect("pool starts");
    let held = pool.stream("hold the only session").await.expect("first");
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.stream("waits in the queue").await.map(drop) }
    });
    wait_stats(&pool, "one queued request", |s| s.queued == 1).await;

    let started = Instant::now();
    let err = pool.stream("one too many").await.expect_err("queue full");
    assert!(
        matches!(err, PoolError::QueueFull { capacity: 1 }),
        "typed error: {err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(500), "immediate");

    let err = waiting.await.expect("task").expect_err("times out");
    assert!(matches!(err, PoolError::QueueTimeout { .. }), "{err:?}");
    let stats = pool.stats().await.expect("stats");
    assert_eq!(stats.rejected, 1);
    drop(held); // interrupts the held turn
    pool.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_spare_answers_without_a_spawn_on_the_request_path_and_never_shares_a_conversation()
{
    let env = TestEnv::new(echo()).await;
    let spares = Spares::builder(env.options())
        .count(2)
        .start()
        .await
        .expect("spares start");
    let before = spares.stats().await.expect("stats");
    assert_eq!(
        (before.ready, before.spawned, before.cold_acquires),
        (2, 2, 0)
    );
    assert_eq!(
        before.warmed, 2,
        "spares are warmed up by default: {before:?}"
    );
    assert!(
        env.mock.requests().is_empty(),
        "the warm-up reaches no API: {:?}",
        env.mock.requests()
    );
    let running_before = live_clis(&env);

    let mut pids = Vec::new();
    for secret in ["secret alpha", "secret beta"] {
        let spare = spares.acquire().await.expect("acquire");
        let pid = spare.pid().expect("pid");
        assert!(
            running_before.contains(&pid),
            "the spare's CLI ran before the request: {pid} not in {running_before:?}"
        );
        let text = spare
            .stream(secret)
            .await
            .expect("stream")
            .final_text()
            .await
            .expect("turn");
        assert_eq!(text, format!("echo: {secret}"));
        pids.push(pid);
        // The used spare's CLI is discarded, never reused.
        let gone = tokio::task::block_in_place(|| {
            wait_until_gone(Duration::from_secs(15), || {
                env.processes()
                    .into_iter()
                    .filter(|p| p.pid == pid && p.state != 'Z')
                    .collect()
            })
        });
        assert!(gone.is_empty(), "used spare still alive: {gone:?}");
    }
    assert_ne!(pids[0], pids[1]);
    let after = spares.stats().await.expect("stats");
    assert_eq!(
        after.cold_acquires, 0,
        "no spawn on the request path: {after:?}"
    );
    assert_eq!(after.acquired, 2);

    let turns = env.mock.turn_requests();
    let beta = turns
        .iter()
        .find(|r| r.user_texts().iter().any(|t| t.contains("secret beta")))
        .expect("beta's request");
    assert!(
        !beta.user_texts().iter().any(|t| t.contains("secret alpha")),
        "no cross-talk: {:?}",
        beta.user_texts()
    );
    // The warm-ups (two initial spares, two refills) made no model call and left
    // nothing in the conversations: each request holds its own prompt and nothing else.
    assert_eq!(turns.len(), 2, "one model call per request");
    for (turn, secret) in turns.iter().zip(["secret alpha", "secret beta"]) {
        assert_eq!(turn.user_texts(), vec![secret.to_string()]);
    }
    spares.stop().await;
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_whose_warm_up_reached_the_model_is_discarded_and_warm_up_switched_off() {
    // The fake CLI answers every prompt, the blank warm-up too, with `num_turns: 1`.
    let env = TestEnv::new(echo()).await;
    let spares = Spares::builder(env.options_for(fake_cli()))
        .count(2)
        .refill_concurrency(1)
        .start()
        .await
        .expect("spares start");
    let stats = spares.stats().await.expect("stats");
    assert_eq!(stats.warmed, 0, "{stats:?}");
    assert_eq!(
        (stats.ready, stats.spawned),
        (2, 3),
        "one spare discarded, then warm-up off: {stats:?}"
    );
    let text = spares
        .acquire()
        .await
        .expect("acquire")
        .stream("after the fallback")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(text, "echo: after the fallback");
    spares.wait_ready(2).await.expect("refilled");
    let stats = spares.stats().await.expect("stats");
    assert_eq!((stats.spawned, stats.warmed), (4, 0), "{stats:?}");
    spares.stop().await;
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_isolated_uses_a_warm_spare_and_refills_it() {
    let env = TestEnv::new(echo()).await;
    let pool = Pool::builder(SessionSpec::new("worker").options(env.options()))
        .size(1)
        .warm_spares(1)
        .start()
        .await
        .expect("pool starts");
    let text = ask(&pool, "shared").await;
    assert_eq!(text, "echo: shared");
    let text = pool
        .isolated("isolated one")
        .await
        .expect("isolated")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(text, "echo: isolated one");
    let stats = wait_stats(&pool, "the spare refilled", |s| {
        s.spares.is_some_and(|sp| sp.ready == 1 && sp.spawned == 2)
    })
    .await;
    assert_eq!(stats.spares.map(|s| s.cold_acquires), Some(0));
    let isolated = env
        .mock
        .turn_requests()
        .into_iter()
        .find(|r| r.user_texts().iter().any(|t| t.contains("isolated one")))
        .expect("request");
    assert!(!isolated.user_texts().iter().any(|t| t.contains("shared")));
    pool.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_hibernates_and_the_next_prompt_resumes_its_history() {
    let env = TestEnv::new(echo()).await;
    let sup = Supervisor::builder()
        .child(
            SessionSpec::new("notes")
                .options(env.options())
                .idle_timeout(Duration::from_secs(1)),
        )
        .start()
        .await
        .expect("start");
    let notes = sup.session("notes");
    // Read before the turn: any lookup counts as use, and a lookup after hibernation
    // would wake the session.
    let pid = notes.pid().await.expect("pid").expect("some");
    let first = notes
        .stream("remember the word pineapple")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert_eq!(first.text, "echo: remember the word pineapple");
    let id = first.session_id().expect("known").to_string();

    wait_for_children(&sup, "hibernation", |l| {
        l[0].status == ChildStatus::Hibernated && l[0].pid.is_none()
    })
    .await;
    let left = tokio::task::block_in_place(|| {
        wait_until_gone(Duration::from_secs(15), || {
            env.processes()
                .into_iter()
                .filter(|p| p.pid == pid && p.state != 'Z')
                .collect()
        })
    });
    assert!(left.is_empty(), "the hibernated CLI is gone: {left:?}");
    let list = sup.list_sessions().await.expect("list");
    assert_eq!(
        list[0].session_id.as_deref(),
        Some(id.as_str()),
        "the id is kept"
    );
    let counts = sup.count_sessions().await.expect("count");
    assert_eq!((counts.active, counts.hibernated), (0, 1));

    let second = notes
        .stream("which word?")
        .await
        .expect("wakes transparently")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(second, "echo: which word?");
    let texts = env
        .mock
        .turn_requests()
        .last()
        .expect("request")
        .user_texts();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("remember the word pineapple")),
        "the resumed conversation carries the old history: {texts:?}"
    );
    // At least one wake: on a loaded machine the 1 s idle timeout may pass again between
    // the wake and the turn, and the session then sleeps and wakes once more.
    let list = sup.list_sessions().await.expect("list");
    assert!(list[0].wakes >= 1, "{list:#?}");
    assert_eq!(list[0].restarts, 0, "a wake is not a restart");
    assert!(sup.count_sessions().await.expect("count").wakes >= 1);
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_limit_of_two_holds_across_five_named_sessions() {
    let env = TestEnv::new(echo()).await;
    let sampler = Sampler::start(&env);
    let names: Vec<String> = (0..5).map(|i| format!("user{i}")).collect();
    let sup = Supervisor::builder()
        .admission(Admission::new().max_live(2))
        .children(names.iter().map(|n| {
            SessionSpec::new(n.as_str())
                .options(env.options())
                .idle_timeout(Duration::from_secs(600))
                .start_hibernated()
        }))
        .start()
        .await
        .expect("start");
    // Round one, in turn: each prompt wakes its session, evicting an idle one.
    for n in &names {
        let text = sup
            .session(n.as_str())
            .stream(format!("{n} says hello"))
            .await
            .expect("stream")
            .final_text()
            .await
            .expect("turn");
        assert_eq!(text, format!("echo: {n} says hello"));
    }
    // Round two, all at once: wakes queue for the two slots.
    let asks = names.iter().map(|n| {
        let s = sup.session(n.as_str());
        async move { ask(&s, format!("{n} again")).await }
    });
    let texts = futures::future::join_all(asks).await;
    for (n, text) in names.iter().zip(texts) {
        assert_eq!(text, format!("echo: {n} again"));
    }
    for n in &names {
        let req = env
            .mock
            .turn_requests()
            .into_iter()
            .find(|r| r.last_user_text().as_deref() == Some(format!("{n} again").as_str()))
            .expect("round two request");
        assert!(
            req.user_texts()
                .iter()
                .any(|t| t == &format!("{n} says hello")),
            "{n} resumed its own history: {:?}",
            req.user_texts()
        );
    }
    let counts = sup.count_sessions().await.expect("count");
    assert!(counts.active <= 2, "{counts:?}");
    assert!(counts.wakes >= 8, "{counts:?}");
    sup.stop().await.expect("stop");
    let most = sampler.max();
    assert!((1..=2).contains(&most), "at most 2 CLIs alive, saw {most}");
    drop(sampler);
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_new_work_and_finishes_an_in_flight_turn() {
    let env = TestEnv::new(
        Script::new()
            .reply(Reply::echo().delay(Duration::from_millis(1500)))
            .fallback(Reply::echo()),
    )
    .await;
    let pool = Pool::builder(SessionSpec::new("worker").options(env.options()))
        .size(1)
        .start()
        .await
        .expect("pool starts");
    let in_flight = pool.stream("finish me").await.expect("stream");
    let drain = tokio::spawn({
        let pool = pool.clone();
        async move { pool.drain(Duration::from_secs(60)).await }
    });
    wait_stats(&pool, "draining", |s| s.draining).await;
    let err = pool.stream("too late").await.expect_err("refused");
    assert!(matches!(err, PoolError::Draining), "{err:?}");
    let text = in_flight
        .final_text()
        .await
        .expect("the in-flight turn finishes");
    assert_eq!(text, "echo: finish me");
    drain.await.expect("task").expect("drained cleanly");
    assert!(pool.stream("after").await.is_err());
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_grows_and_shrinks_the_pool() {
    let env = TestEnv::new(echo()).await;
    let pool = Pool::builder(SessionSpec::new("w").options(env.options_for(fake_cli())))
        .size(1)
        .start()
        .await
        .expect("pool starts");
    pool.resize(4).await.expect("grow");
    assert_eq!(pool.stats().await.expect("stats").size, 4);
    let asks = (0..8).map(|i| {
        let pool = pool.clone();
        async move {
            pool.stream(format!("p{i}"))
                .await
                .expect("s")
                .final_text()
                .await
        }
    });
    for r in futures::future::join_all(asks).await {
        assert!(r.expect("turn").starts_with("echo: p"));
    }
    pool.resize(2).await.expect("shrink");
    wait_stats(&pool, "two members", |s| {
        s.size == 2 && s.members.len() == 2
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "retired members stopped",
        || async {
            let live = live_clis(&env);
            if live.len() <= 2 {
                Ok(())
            } else {
                Err(live)
            }
        },
    )
    .await;
    let text = pool
        .stream("still works")
        .await
        .expect("s")
        .final_text()
        .await
        .expect("t");
    assert_eq!(text, "echo: still works");
    pool.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

/// Two requests, one after the other, on a pool of one member built with `context`
/// (`None`: the default). Returns the second request's recorded API request and the
/// pool's stats once the member is free again. Checks on the way that resetting a
/// conversation makes no API request and that the member's cost counts both turns.
async fn two_requests_on_one_member(
    env: &TestEnv,
    context: Option<PoolContext>,
) -> (RecordedRequest, PoolStats) {
    let mut builder = Pool::builder(SessionSpec::new("worker").options(env.options())).size(1);
    if let Some(context) = context {
        builder = builder.context(context);
    }
    let pool = builder.start().await.expect("pool starts");
    let first = pool
        .stream("secret alpha")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert_eq!(first.text, "echo: secret alpha");
    let requests_after_first = env.mock.requests().len();
    // The member is free again once its conversation is reset (if it is).
    let stats = wait_stats(&pool, "the member free again", |s| {
        s.inflight == 0 && s.clearing == 0
    })
    .await;
    assert_eq!(
        env.mock.requests().len(),
        requests_after_first,
        "resetting the conversation made no API request"
    );
    assert_eq!(ask(&pool, "secret beta").await, "echo: secret beta");
    let turns = env.mock.turn_requests();
    assert_eq!(turns.len(), 2, "one model call per request");
    let second = turns[1].clone();
    assert_eq!(second.last_user_text().as_deref(), Some("secret beta"));
    let after = pool.stats().await.expect("stats");
    assert_eq!(
        after.members[0].served, 2,
        "one member served both: {after:#?}"
    );
    // Both turns cost the same (same usage, same model); a clear is no turn.
    let report = pool.cost_report().await.expect("report");
    let member = &report.sessions["worker-0"];
    assert_eq!(member.turns, 2, "{report:#?}");
    assert_eq!(member.usage.output_tokens, 2 * 20, "{report:#?}");
    let one = first.cost_usd().expect("cost");
    assert!(
        one > 0.0 && (member.cost_usd - 2.0 * one).abs() < 1e-9,
        "{} vs 2 x {one}",
        member.cost_usd
    );
    pool.stop().await.expect("stop");
    env.assert_no_leftovers().await;
    (second, stats)
}

/// The mock echoes each prompt and reports the same usage for every turn.
fn echo_with_usage() -> Script {
    Script::new().fallback(Reply::echo().usage(100, 20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_pool_request_carries_nothing_of_the_previous_request_on_its_member() {
    let env = TestEnv::new(echo_with_usage()).await;
    let (second, stats) = two_requests_on_one_member(&env, None).await;
    let body = second.body.to_string();
    assert!(
        !body.contains("secret alpha") && !body.contains("echo: secret alpha"),
        "request 2's body holds nothing of request 1 (prompt or reply): {:#?}",
        second.messages()
    );
    assert_eq!((stats.cleared, stats.clear_fallbacks), (1, 0), "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_context_pool_request_sees_the_previous_request_on_its_member() {
    let env = TestEnv::new(echo_with_usage()).await;
    let (second, stats) = two_requests_on_one_member(&env, Some(PoolContext::Shared)).await;
    let body = second.body.to_string();
    assert!(
        body.contains("secret alpha") && body.contains("echo: secret alpha"),
        "request 2 continues request 1's conversation: {:#?}",
        second.messages()
    );
    assert_eq!((stats.cleared, stats.clear_fallbacks), (0, 0), "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_turns_count_in_the_pool_and_supervisor_cost_report() {
    let env = TestEnv::new(echo()).await;
    env.mock.push(Reply::text("member").usage(100, 20));
    env.mock.push(Reply::text("on a spare").usage(50, 7));
    env.mock.push(Reply::text("on a new CLI").usage(30, 3));
    let pool = Pool::builder(SessionSpec::new("worker").options(env.options()))
        .size(1)
        .warm_spares(1)
        .start()
        .await
        .expect("pool starts");
    assert_eq!(ask(&pool, "to a member").await, "member");
    let spare_turn = pool
        .isolated("to a spare")
        .await
        .expect("isolated")
        .collect()
        .await
        .expect("turn");
    assert_eq!(spare_turn.text, "on a spare");
    let report = pool.cost_report().await.expect("report");
    let isolated = &report.sessions["worker-isolated"];
    assert_eq!(isolated.turns, 1, "{report:#?}");
    assert_eq!(
        (isolated.usage.input_tokens, isolated.usage.output_tokens),
        (50, 7)
    );
    let reported = spare_turn.cost_usd().expect("the CLI reports a cost");
    assert!(reported > 0.0, "{reported}");
    assert!(
        (isolated.cost_usd - reported).abs() < 1e-9,
        "{} vs {reported}",
        isolated.cost_usd
    );
    assert_eq!(
        report.total.turns, 2,
        "member turn + isolated turn: {report:#?}"
    );
    assert_eq!(report.total.usage.output_tokens, 20 + 7);
    let member = &report.sessions["worker-0"];
    assert!(
        (report.total.cost_usd - member.cost_usd - reported).abs() < 1e-9,
        "{report:#?}"
    );
    assert_eq!(
        pool.supervisor().cost_report().await.expect("report"),
        report,
        "the supervisor reports the same"
    );
    pool.stop().await.expect("stop");

    // Without warm spares, an isolated turn runs on a CLI started for it: counted too.
    let pool = Pool::builder(SessionSpec::new("plain").options(env.options()))
        .size(1)
        .start()
        .await
        .expect("pool starts");
    let text = pool
        .isolated("to a new CLI")
        .await
        .expect("isolated")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(text, "on a new CLI");
    let report = pool.cost_report().await.expect("report");
    assert_eq!(report.sessions["plain-isolated"].turns, 1, "{report:#?}");
    assert_eq!(report.sessions["plain-isolated"].usage.output_tokens, 3);
    assert_eq!(report.total.turns, 1);
    pool.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_cli_with_clear_on_answers_clear_locally_and_keeps_its_member() {
    // `FAKE_CLAUDE_CLEAR=1` (the host benchmark's fake-CLI pools): `/clear` gets a new
    // conversation without a model call, so the pool clears instead of restarting.
    let env = TestEnv::new(echo()).await;
    let options = env.options_for(fake_cli()).env("FAKE_CLAUDE_CLEAR", "1");
    let pool = Pool::builder(SessionSpec::new("w").options(options))
        .size(1)
        .start()
        .await
        .expect("pool starts");
    let pid = pool.stats().await.expect("stats").members[0].pid;
    assert_eq!(ask(&pool, "first").await, "echo: first");
    assert_eq!(ask(&pool, "second").await, "echo: second");
    let stats = wait_stats(&pool, "both requests cleared", |s| {
        s.cleared == 2 && s.clearing == 0
    })
    .await;
    assert_eq!(stats.clear_fallbacks, 0, "{stats:#?}");
    assert_eq!(stats.members[0].pid, pid, "the same CLI: {stats:#?}");
    pool.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_clear_reached_the_model_is_restarted() {
    // The fake CLI answers every prompt, `/clear` too, with a model call (`num_turns: 1`):
    // the clear is not trusted and the member is restarted instead.
    let env = TestEnv::new(echo()).await;
    let pool = Pool::builder(SessionSpec::new("w").options(env.options_for(fake_cli())))
        .size(1)
        .start()
        .await
        .expect("pool starts");
    let pid = pool.stats().await.expect("stats").members[0].pid;
    assert_eq!(ask(&pool, "first").await, "echo: first");
    let stats = wait_stats(&pool, "the member restarted", |s| {
        s.clear_fallbacks == 1 && s.clearing == 0
    })
    .await;
    assert_eq!(stats.cleared, 0, "{stats:#?}");
    assert_ne!(stats.members[0].pid, pid, "a new CLI: {stats:#?}");
    // Read before the next request, whose own clear restarts the member again.
    let child = &pool.supervisor().list_sessions().await.expect("list")[0];
    assert_eq!(child.restarts, 1, "{child:#?}");
    assert_eq!(ask(&pool, "second").await, "echo: second");
    pool.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}
