//! Cluster pools in-process: hosts joined to a real nats-server with JetStream take pool
//! jobs from the work-queue stream, at most as many at a time as their pool has members;
//! a redelivered job that already has its reply is answered from its record, not run
//! again; a cancelled one is dropped. The real CLI runs against the project's mock API.

use std::time::Duration;

use async_nats::jetstream;
use claude_code_serve::{
    cluster::{consumer_name, job_subject, ClusterConfig, Job, JobFrame, JobRecord, JobReply},
    Host, HostConfig, PoolConfig,
};
use claude_code_tests::{eventually, NatsServer, Reply, Script, TestEnv};
use futures::StreamExt;
use serde_json::{json, Value};

async fn host(env: &TestEnv, nats: &NatsServer, node: &str, size: usize, max_queue: usize) -> Host {
    let mut pool = PoolConfig::new("work", env.options(), size);
    pool.max_queue = max_queue;
    pool.queue_timeout = Duration::from_secs(30);
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
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
            JobFrame::Started { .. } => continue,
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
