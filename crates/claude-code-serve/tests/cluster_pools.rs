//! Cluster pools in-process: hosts joined to a real nats-server with JetStream take pool
//! jobs from the work-queue stream, at most as many at a time as their pool has members;
//! a redelivered job that already has its reply is answered from its record, not run
//! again; a cancelled one is dropped. The real CLI runs against the project's mock API.

use std::time::Duration;

use async_nats::jetstream;
use claude_code_serve::{
    cluster::{
        consumer_name, job_subject, ClusterConfig, Job, JobCredit, JobFrame, JobRecord, JobReply,
    },
    Host, HostConfig, PoolConfig,
};
use claude_code_tests::{eventually, NatsServer, Reply, Script, TestEnv};
use futures::StreamExt;
use serde_json::{json, Value};

async fn host(env: &TestEnv, nats: &NatsServer, node: &str, size: usize, max_queue: usize) -> Host {
    host_with(env.options(), nats, node, size, max_queue).await
}

async fn host_with(
    options: claude_code::Options,
    nats: &NatsServer,
    node: &str,
    size: usize,
    max_queue: usize,
) -> Host {
    let mut pool = PoolConfig::new("work", options.clone(), size);
    pool.max_queue = max_queue;
    pool.queue_timeout = Duration::from_secs(30);
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(options)
        .offline(false)
        .pool(pool)
        .cluster(
            ClusterConfig::new(nats.url())
                .node_name(node)
                .heartbeat(Duration::from_millis(500))
                .pool_ack_wait(Duration::from_secs(3)),
        );
    config.spares = 0;
    Host::start(config).await.expect("host starts")
}

/// `POST /v1/pools/work/messages`: status, the node header, the body.
async fn job(url: String, prompt: String) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/pools/work/messages"))
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .expect("request");
    let node = r
        .headers()
        .get("x-claude-pool-node")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (
        r.status().as_u16(),
        node,
        r.json().await.expect("json body"),
    )
}

async fn pool_view(host: &Host) -> Value {
    let view: Value = reqwest::get(format!("{}/v1/pools", host.url()))
        .await
        .expect("GET /v1/pools")
        .json()
        .await
        .expect("json");
    view["pools"][0].clone()
}

/// The pool consumer's (waiting, delivered and not acknowledged) jobs.
async fn consumer_counts(js: &jetstream::Context) -> (u64, usize) {
    let consumer: jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream(consumer_name("work"), "CLAUDE_JOBS")
        .await
        .expect("the pool's consumer");
    let info = consumer.get_info().await.expect("consumer info");
    (info.num_pending, info.num_ack_pending)
}

#[tokio::test]
async fn each_host_takes_only_as_many_jobs_as_its_pool_has_members_and_a_full_queue_is_429() {
    let env =
        TestEnv::new(Script::new().fallback(Reply::echo().delay(Duration::from_secs(2)))).await;
    let nats = NatsServer::start();
    let a = host(&env, &nats, "host-a", 1, 2).await;
    let b = host(&env, &nats, "host-b", 1, 2).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connect"));

    // Two jobs through A: one runs on each host (each has one member).
    let mut running = Vec::new();
    for i in 0..2 {
        running.push(tokio::spawn(job(a.url(), format!("job {i}"))));
    }
    eventually(Duration::from_secs(20), "both hosts run a job", || async {
        let (pa, pb) = (pool_view(&a).await, pool_view(&b).await);
        if pa["busy"] == 1 && pb["busy"] == 1 {
            Ok(())
        } else {
            Err((pa, pb))
        }
    })
    .await;
    // Two more wait in the stream, not on a host: no host takes more than it can run.
    for i in 2..4 {
        running.push(tokio::spawn(job(a.url(), format!("job {i}"))));
    }
    eventually(
        Duration::from_secs(5),
        "two jobs wait in the stream",
        || async {
            match consumer_counts(&js).await {
                (2, 2) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    for h in [&a, &b] {
        let view = pool_view(h).await;
        assert_eq!(
            (view["busy"].as_u64(), view["queued"].as_u64()),
            (Some(1), Some(0)),
            "{view}"
        );
    }
    // The pool's queue (2) is full, cluster-wide: the next request is refused at once.
    let (status, node, body) = job(b.url(), "one too many".into()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("queue_full")),
        "{body}"
    );
    assert_eq!(node, None);

    let mut nodes = Vec::new();
    for (i, task) in running.into_iter().enumerate() {
        let (status, node, body) = task.await.expect("job task");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["text"], format!("echo: job {i}"), "{body}");
        nodes.push(node.expect("the node header"));
    }
    nodes.sort();
    assert_eq!(nodes, ["host-a", "host-a", "host-b", "host-b"]);
    assert_eq!(consumer_counts(&js).await, (0, 0), "every job acknowledged");
    // Each prompt reached the model once; the refused one never.
    let prompts: Vec<String> = env
        .mock
        .turn_requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .collect();
    for i in 0..4 {
        assert_eq!(
            prompts.iter().filter(|p| **p == format!("job {i}")).count(),
            1,
            "{prompts:?}"
        );
    }
    assert!(!prompts.iter().any(|p| p == "one too many"));
    a.shutdown().await.expect("shutdown a");
    b.shutdown().await.expect("shutdown b");
    env.assert_no_leftovers().await;
}

/// Publishes a job as a requester does; the inbox's subscription.
async fn publish(
    js: &jetstream::Context,
    client: &async_nats::Client,
    id: &str,
    prompt: &str,
) -> async_nats::Subscriber {
    let inbox = client.new_inbox();
    let sub = client.subscribe(inbox.clone()).await.expect("subscribe");
    let job = Job {
        id: id.into(),
        tenant: "default".into(),
        prompt: prompt.into(),
        inbox,
        credit: None,
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(
        job_subject("work"),
        headers,
        serde_json::to_vec(&job).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    sub
}

/// The next frame on a job's inbox (at most 20 s).
async fn frame(sub: &mut async_nats::Subscriber) -> JobFrame {
    let m = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("a frame in time")
        .expect("a frame");
    serde_json::from_slice(&m.payload).expect("a job frame")
}

/// The `Done` frame of a job, skipping `Started`.
async fn done(sub: &mut async_nats::Subscriber) -> (String, i64, JobReply) {
    loop {
        match frame(sub).await {
            JobFrame::Done {
                node,
                attempt,
                reply,
                ..
            } => return (node, attempt, reply),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn a_redelivered_job_with_a_reply_is_not_run_again_and_a_cancelled_one_is_dropped() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let a = host(&env, &nats, "host-a", 1, 64).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    let records = js.get_key_value("claude_jobs_done").await.expect("records");
    let put = |id: &'static str, record: JobRecord| {
        let records = records.clone();
        async move {
            records
                .put(id, serde_json::to_vec(&record).expect("json").into())
                .await
                .expect("put a record");
        }
    };

    // A job whose host stored its reply and died before acknowledging: the redelivery
    // sends the stored reply again and does not run it.
    let stored = JobReply {
        status: 200,
        body: json!({"text": "stored answer", "session_id": null, "cost_usd": 0.0, "is_error": false}),
        retry_after: None,
    };
    put(
        "job-done",
        JobRecord::Done {
            node: "host-gone".into(),
            attempt: 1,
            reply: stored.clone(),
        },
    )
    .await;
    let mut inbox = publish(&js, &client, "job-done", "must not run").await;
    assert_eq!(done(&mut inbox).await, ("host-gone".into(), 1, stored));

    // A job its requester cancelled is dropped without a frame; the next runs.
    put("job-cancelled", JobRecord::Cancelled).await;
    let mut cancelled = publish(&js, &client, "job-cancelled", "cancelled, must not run").await;
    let mut fresh = publish(&js, &client, "job-fresh", "fresh").await;
    let (node, attempt, reply) = done(&mut fresh).await;
    assert_eq!((node.as_str(), attempt), ("host-a", 1));
    assert_eq!(reply.body["text"], "echo: fresh", "{reply:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), cancelled.next())
            .await
            .is_err(),
        "a cancelled job gets no frame"
    );

    // A job claimed by a host that died mid-turn (a `running` record) is taken over.
    put(
        "job-orphan",
        JobRecord::Running {
            node: "host-dead".into(),
            attempt: 1,
        },
    )
    .await;
    let mut orphan = publish(&js, &client, "job-orphan", "orphan").await;
    let (node, _, reply) = done(&mut orphan).await;
    assert_eq!(node, "host-a");
    assert_eq!(reply.body["text"], "echo: orphan", "{reply:?}");

    // A job published twice with one id (a requester's retry) runs once.
    let mut twice = publish(&js, &client, "job-twice", "twice").await;
    let _again = publish(&js, &client, "job-twice", "twice").await;
    let (_, _, reply) = done(&mut twice).await;
    assert_eq!(reply.body["text"], "echo: twice");

    // Its record holds the reply, and the stream is empty.
    let record: JobRecord = serde_json::from_slice(
        &records
            .get("job-fresh")
            .await
            .expect("read")
            .expect("a record"),
    )
    .expect("record");
    assert!(
        matches!(&record, JobRecord::Done { node, .. } if node == "host-a"),
        "{record:?}"
    );
    eventually(
        Duration::from_secs(10),
        "every job acknowledged",
        || async {
            match consumer_counts(&js).await {
                (0, 0) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    let prompts: Vec<String> = env
        .mock
        .turn_requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .collect();
    assert_eq!(prompts, ["fresh", "orphan", "twice"]);
    a.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

/// An SSE pool request, read as it comes: the status, the node header, and the events.
struct SseJob {
    status: u16,
    node: Option<String>,
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseJob {
    async fn send(url: &str, pool: &str, prompt: &str) -> SseJob {
        let r = reqwest::Client::new()
            .post(format!("{url}/v1/pools/{pool}/messages"))
            .header("accept", "text/event-stream")
            .json(&json!({ "prompt": prompt }))
            .send()
            .await
            .expect("request");
        SseJob {
            status: r.status().as_u16(),
            node: r
                .headers()
                .get("x-claude-pool-node")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            body: Box::pin(r.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next `(event, data)`, `None` at the stream's end.
    async fn event(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = Some(e.to_string());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if let Some(event) = event {
                    return Some((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
                }
                continue;
            }
            let chunk = self.body.next().await?.expect("the SSE body");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    async fn all(mut self) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        while let Some(e) = self.event().await {
            events.push(e);
        }
        events
    }
}

/// The value of the `series` sample of `GET /metrics` whose labels include every pair
/// of `labels`.
async fn metric(host: &Host, series: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", host.url()))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(&format!("{series}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn pool_jobs(host: &Host, node: &str, outcome: &str) -> Option<f64> {
    metric(
        host,
        "claude_cluster_pool_jobs_total",
        &[("node", node), ("pool", "work"), ("outcome", outcome)],
    )
    .await
}

/// Starts a slow JSON job through `host` (alone in its cluster) and waits until its
/// turn reached the model: the host's only pool member is busy until the reply comes.
async fn occupy(
    env: &TestEnv,
    host: &Host,
    hold: Duration,
) -> tokio::task::JoinHandle<(u16, Option<String>, Value)> {
    env.mock.push(Reply::text("held").delay(hold));
    let before = env.mock.turn_requests().len();
    let running = tokio::spawn(job(host.url(), "hold the member".into()));
    eventually(
        Duration::from_secs(30),
        "the holding job reaches the model",
        || async {
            if env.mock.turn_requests().len() > before {
                Ok(())
            } else {
                Err("not yet")
            }
        },
    )
    .await;
    running
}

#[tokio::test]
async fn an_sse_pool_request_through_a_host_without_free_members_streams_from_another_like_a_local_one(
) {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    // B's only member is busy: B's SSE request becomes a job that A runs.
    let b = host(&env, &nats, "sse-b", 1, 8).await;
    let held = occupy(&env, &b, Duration::from_secs(4)).await;
    let a = host(&env, &nats, "sse-a", 1, 8).await;
    let streamed = SseJob::send(&b.url(), "work", "streamed through B").await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.node.as_deref(), Some("sse-a"));
    let events = streamed.all().await;

    // A local SSE pool turn (a host without a cluster) sends the same events.
    let mut pool = PoolConfig::new("work", env.options(), 1);
    pool.queue_timeout = Duration::from_secs(30);
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .pool(pool);
    config.spares = 0;
    let local = Host::start(config).await.expect("local host starts");
    let here = SseJob::send(&local.url(), "work", "streamed locally").await;
    assert_eq!((here.status, here.node.as_deref()), (200, None));
    let local_events = here.all().await;

    let names = |events: &[(String, Value)]| -> Vec<String> {
        events.iter().map(|(e, _)| e.clone()).collect()
    };
    eprintln!("events: {:?}", names(&events));
    assert_eq!(names(&events), names(&local_events), "{events:?}");
    assert_eq!(events.last().map(|(e, _)| e.as_str()), Some("result"));
    assert_eq!(
        events.last().expect("result").1["result"],
        "echo: streamed through B",
        "{events:?}"
    );
    let (status, node, body) = held.await.expect("the holding job");
    assert_eq!((status, node.as_deref()), (200, Some("sse-b")), "{body}");

    // The job's figures: published at B, run at A, and in flight nowhere now.
    assert_eq!(pool_jobs(&b, "sse-b", "published").await, Some(2.0));
    assert_eq!(pool_jobs(&a, "sse-a", "run").await, Some(1.0));
    assert_eq!(pool_jobs(&b, "sse-b", "run").await, Some(1.0));
    assert_eq!(pool_jobs(&b, "sse-b", "failed").await, Some(0.0));
    assert_eq!(
        metric(
            &a,
            "claude_cluster_pool_jobs_in_flight",
            &[("node", "sse-a"), ("pool", "work")]
        )
        .await,
        Some(0.0)
    );
    assert_eq!(
        metric(
            &b,
            "claude_cluster_pool_job_seconds_count",
            &[("node", "sse-b"), ("pool", "work"), ("mode", "sse")]
        )
        .await,
        Some(1.0)
    );
    let prompts: Vec<String> = env
        .mock
        .turn_requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .collect();
    assert_eq!(
        prompts
            .iter()
            .filter(|p| *p == "streamed through B")
            .count(),
        1,
        "{prompts:?}"
    );
    for h in [a, b, local] {
        h.shutdown().await.expect("shutdown");
    }
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_streamed_job_holds_its_executor_at_the_credit_window_and_runs_on_when_its_requester_leaves(
) {
    // A long reply, streamed: hundreds of partial messages, far more than the credit
    // window (32) plus the executor's turn buffer (64).
    let long = "abcdefghijklmnopqrstuvwxyz012345".repeat(300);
    let env = TestEnv::new(Script::new().fallback(Reply::text(long.clone()))).await;
    let nats = NatsServer::start();
    let a = host_with(
        env.options().include_partial_messages(true),
        &nats,
        "win-a",
        1,
        8,
    )
    .await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    // A raw requester on the wire protocol that credits nothing at first.
    let inbox = client.new_inbox();
    let credit = client.new_inbox();
    let mut frames = client.subscribe(inbox.clone()).await.expect("subscribe");
    let job = Job {
        id: "job-window".into(),
        tenant: "default".into(),
        prompt: "talk a lot".into(),
        inbox,
        credit: Some(credit.clone()),
    };
    js.publish(
        job_subject("work"),
        serde_json::to_vec(&job).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let attempt = match frame(&mut frames).await {
        JobFrame::Started { node, attempt, .. } => {
            assert_eq!(node, "win-a");
            attempt
        }
        other => panic!("not started: {other:?}"),
    };
    let mut messages = 0usize;
    while messages < 32 {
        match frame(&mut frames).await {
            JobFrame::Message { attempt: a, .. } => {
                assert_eq!(a, attempt);
                messages += 1;
            }
            other => panic!("a message frame: {other:?}"),
        }
    }
    // The window is full: the executor sends nothing more until credited.
    let more = tokio::time::timeout(Duration::from_secs(1), frames.next()).await;
    assert!(more.is_err(), "a frame past the window arrived uncredited");
    // 16 taken: exactly 16 more come, then it waits again.
    client
        .publish(
            credit.clone(),
            serde_json::to_vec(&JobCredit { attempt, n: 16 })
                .expect("json")
                .into(),
        )
        .await
        .expect("credit");
    for _ in 0..16 {
        assert!(
            matches!(frame(&mut frames).await, JobFrame::Message { .. }),
            "a message frame"
        );
        messages += 1;
    }
    let more = tokio::time::timeout(Duration::from_millis(500), frames.next()).await;
    assert!(
        more.is_err(),
        "only as many frames as credited: {messages} so far"
    );

    // The requester leaves (credit 0): no message comes any more; the turn runs to its
    // end there, unobserved, its reply is stored once and the job acknowledged.
    client
        .publish(
            credit.clone(),
            serde_json::to_vec(&JobCredit { attempt: 0, n: 0 })
                .expect("json")
                .into(),
        )
        .await
        .expect("gone");
    let (node, done_attempt, reply) = match frame(&mut frames).await {
        JobFrame::Done {
            node,
            attempt,
            reply,
            ..
        } => (node, attempt, reply),
        other => panic!("no message after the requester left: {other:?}"),
    };
    assert_eq!((node.as_str(), done_attempt), ("win-a", attempt));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["text"], long.as_str());
    let records = js.get_key_value("claude_jobs_done").await.expect("records");
    let record: JobRecord = serde_json::from_slice(
        &records
            .get("job-window")
            .await
            .expect("read")
            .expect("a record"),
    )
    .expect("record");
    assert!(matches!(record, JobRecord::Done { .. }), "{record:?}");
    eventually(Duration::from_secs(10), "the job acknowledged", || async {
        match consumer_counts(&js).await {
            (0, 0) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let view = pool_view(&a).await;
    assert_eq!(view["served"], 1, "{view}");
    assert_eq!(
        env.mock.turn_requests().len(),
        1,
        "the prompt reached the model once"
    );
    a.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn an_executor_killed_mid_stream_ends_the_stream_with_owner_lost_and_is_not_run_again() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connect"));
    let b = host(&env, &nats, "kill-b", 1, 8).await;
    let held = occupy(&env, &b, Duration::from_secs(6)).await;
    let a = host(&env, &nats, "kill-a", 1, 8).await;
    // The job's reply never comes before A dies.
    env.mock
        .push(Reply::text("never sent").delay(Duration::from_secs(60)));
    let mut streamed = SseJob::send(&b.url(), "work", "cut short").await;
    assert_eq!(
        (streamed.status, streamed.node.as_deref()),
        (200, Some("kill-a"))
    );
    // The client has seen part of the turn (the CLI's first message) ...
    let (first, _) = streamed.event().await.expect("a first event");
    assert_ne!(first, "error");
    eventually(
        Duration::from_secs(30),
        "the job's turn reaches the model",
        || async {
            let prompts: Vec<String> = env
                .mock
                .turn_requests()
                .iter()
                .filter_map(|r| r.last_user_text())
                .collect();
            if prompts.iter().any(|p| p == "cut short") {
                Ok(())
            } else {
                Err(prompts)
            }
        },
    )
    .await;
    // ... when A dies: the stream ends with a typed error within the heartbeat TTL.
    let killed = std::time::Instant::now();
    a.abort().await.expect("a stops");
    let mut last = None;
    while let Some(event) = streamed.event().await {
        last = Some(event);
    }
    let lost_after = killed.elapsed();
    let (event, data) = last.expect("an event after the kill");
    assert_eq!(event, "error", "{data}");
    assert_eq!(data["code"], "owner_lost", "{data}");
    assert!(
        data["message"]
            .as_str()
            .is_some_and(|m| m.contains("kill-a") && m.contains("not run again")),
        "{data}"
    );
    assert!(
        lost_after < Duration::from_secs(10),
        "failed within the TTL: {lost_after:?}"
    );
    // The job is redelivered to B once its member is free, and dropped there: nothing
    // is replayed to anyone.
    let _ = held.await.expect("the holding job");
    eventually(
        Duration::from_secs(30),
        "the redelivered job dropped",
        || async {
            match (
                consumer_counts(&js).await,
                pool_jobs(&b, "kill-b", "dropped").await,
            ) {
                ((0, 0), Some(n)) if n >= 1.0 => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(pool_jobs(&b, "kill-b", "failed").await, Some(1.0));
    assert_eq!(pool_jobs(&b, "kill-b", "redelivered").await, Some(1.0));
    let prompts: Vec<String> = env
        .mock
        .turn_requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .collect();
    assert_eq!(
        prompts.iter().filter(|p| *p == "cut short").count(),
        1,
        "reached the model once, not replayed: {prompts:?}"
    );
    eprintln!("the streamed job failed {lost_after:?} after its executor was killed (heartbeat TTL 1.5 s)");
    b.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_sse_job_whose_executor_dies_before_its_first_message_is_redelivered_and_streams_whole()
{
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    let b = host(&env, &nats, "ghost-b", 1, 8).await;
    let held = occupy(&env, &b, Duration::from_secs(2)).await;
    // A "ghost" executor (no heartbeat: not a live member) takes the job while B's member
    // is busy, claims it and says it started, then dies without a message.
    let consumer: jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream(consumer_name("work"), "CLAUDE_JOBS")
        .await
        .expect("the pool's consumer");
    let records = js.get_key_value("claude_jobs_done").await.expect("records");
    let ghost = tokio::spawn(async move {
        let mut batch = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(20))
            .messages()
            .await
            .expect("pull");
        let msg = batch.next().await.expect("a job").expect("a job message");
        let job: Job = serde_json::from_slice(&msg.payload).expect("a job");
        let running = JobRecord::Running {
            node: "ghost".into(),
            attempt: 1,
        };
        records
            .create(&job.id, serde_json::to_vec(&running).expect("json").into())
            .await
            .expect("the ghost's claim");
        let started = JobFrame::Started {
            id: job.id.clone(),
            node: "ghost".into(),
            attempt: 1,
        };
        client
            .publish(
                job.inbox.clone(),
                serde_json::to_vec(&started).expect("json").into(),
            )
            .await
            .expect("started");
        client.flush().await.expect("flush");
        // Dies holding the job unacknowledged: it is redelivered after the ack wait.
        job
    });
    let streamed = SseJob::send(&b.url(), "work", "after a ghost").await;
    assert_eq!(
        (streamed.status, streamed.node.as_deref()),
        (200, Some("ghost"))
    );
    let job = ghost.await.expect("the ghost");
    let events = streamed.all().await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"system"), "{names:?}");
    assert_eq!(names.last(), Some(&"result"), "{names:?}");
    assert!(!names.contains(&"error"), "{names:?}");
    assert_eq!(
        events.last().expect("result").1["result"],
        "echo: after a ghost"
    );
    let _ = held.await.expect("the holding job");
    let record: JobRecord = serde_json::from_slice(
        &js.get_key_value("claude_jobs_done")
            .await
            .expect("records")
            .get(&job.id)
            .await
            .expect("read")
            .expect("a record"),
    )
    .expect("record");
    assert!(
        matches!(&record, JobRecord::Done { node, attempt, .. } if node == "ghost-b" && *attempt == 2),
        "{record:?}"
    );
    assert_eq!(pool_jobs(&b, "ghost-b", "redelivered").await, Some(1.0));
    let prompts: Vec<String> = env
        .mock
        .turn_requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .collect();
    assert_eq!(
        prompts.iter().filter(|p| *p == "after a ghost").count(),
        1,
        "{prompts:?}"
    );
    b.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}
