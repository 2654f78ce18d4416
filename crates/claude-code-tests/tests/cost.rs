//! Cost accounting end to end (real CLI + mock API): per-turn, per-session and
//! supervisor totals equal what the mock reported, across a restart (a new CLI process
//! whose cumulative counters start from zero), and budgets refuse further turns.

use claude_code::{CostTracker, SessionSpec, Supervisor, SupervisorError, TurnSummary};
use claude_code_tests::{kill_9, wait_restarted, Reply, Script, TestEnv};

#[tokio::test]
async fn cost_totals_equal_the_sum_of_the_mock_usage_across_a_restart() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    env.mock.push(Reply::text("one").usage(100, 20));
    env.mock.push(Reply::text("two").usage(50, 7));
    env.mock.push(Reply::text("three").usage(30, 3));
    let sup = Supervisor::builder()
        .child(SessionSpec::new("a").options(env.options()))
        .start()
        .await
        .expect("start");
    let a = sup.session("a");
    let mut summaries: Vec<TurnSummary> = Vec::new();
    for prompt in ["first", "second"] {
        summaries.push(
            a.stream(prompt)
                .await
                .expect("stream")
                .collect()
                .await
                .expect("turn"),
        );
    }
    kill_9(a.pid().await.expect("pid").expect("some"));
    wait_restarted(&sup, "a", 1).await;
    summaries.push(
        a.stream("third")
            .await
            .expect("stream")
            .collect()
            .await
            .expect("turn"),
    );

    let report = sup.cost_report().await.expect("report");
    let session = &report.sessions["a"];
    assert_eq!(session.turns, 3);
    assert_eq!(session.usage.output_tokens, 20 + 7 + 3, "{report:#?}");
    assert_eq!(session.usage.input_tokens, 100 + 50 + 30, "{report:#?}");
    // Cost: the last cumulative figure of each process, summed.
    let reported: Vec<f64> = summaries
        .iter()
        .map(|s| s.cost_usd().unwrap_or(0.0))
        .collect();
    assert!(
        reported[2] < reported[1],
        "the new process counts from zero (it does not restore the old cost): {reported:?}"
    );
    let expected = reported[1] + reported[2];
    assert!(
        (session.cost_usd - expected).abs() < 1e-9,
        "{} vs {expected} (cumulative per result: {reported:?})",
        session.cost_usd
    );
    let by_model: u64 = session
        .model_usage
        .values()
        .map(|m| m.usage.output_tokens)
        .sum();
    assert_eq!(
        by_model, 30,
        "model breakdown adds up: {:#?}",
        session.model_usage
    );
    assert_eq!(report.total, *session);
    let listed = sup.list_sessions().await.expect("list");
    assert!((listed[0].cost_usd - expected).abs() < 1e-9);

    // The same figures from a tracker fed by hand.
    let mut tracker = CostTracker::new();
    for (i, s) in summaries.iter().enumerate() {
        if i == 2 {
            tracker.new_process();
        }
        tracker.record_summary(s).expect("a new result");
        assert!(tracker.record_summary(s).is_none(), "deduplicated");
    }
    assert_eq!(tracker.totals(), session);

    let json = serde_json::to_string(&report).expect("serialisable");
    assert!(json.contains("\"sessions\""));
    sup.stop().await.expect("stop");
}

#[tokio::test]
async fn a_spent_budget_refuses_further_turns() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo().usage(1000, 1000))).await;
    let sup = Supervisor::builder()
        .child(
            SessionSpec::new("thrifty")
                .options(env.options())
                .budget_usd(1e-9),
        )
        .child(SessionSpec::new("free").options(env.options()))
        .start()
        .await
        .expect("start");
    let summary = sup
        .session("thrifty")
        .stream("spend")
        .await
        .expect("the first turn runs")
        .collect()
        .await
        .expect("turn");
    let spent = summary.cost_usd().unwrap_or(0.0);
    assert!(
        spent > 0.0,
        "the CLI prices the mock's tokens: {:?}",
        summary.result
    );
    let err = sup
        .session("thrifty")
        .stream("more")
        .await
        .expect_err("over budget");
    assert!(
        matches!(err, SupervisorError::BudgetExceeded { ref scope, .. } if scope.contains("thrifty")),
        "{err}"
    );
    // Other sessions are not affected by one session's budget.
    sup.session("free")
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    sup.stop().await.expect("stop");

    // A supervisor budget covers all children.
    let sup = Supervisor::builder()
        .budget_usd(1e-9)
        .child(SessionSpec::new("x").options(env.options()))
        .start()
        .await
        .expect("start");
    sup.session("x")
        .stream("spend")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    let err = sup
        .session("x")
        .stream("more")
        .await
        .expect_err("over budget");
    assert!(
        matches!(err, SupervisorError::BudgetExceeded { ref scope, .. } if scope.contains("supervisor")),
        "{err}"
    );
    sup.stop().await.expect("stop");
}

#[tokio::test]
async fn a_graceful_restart_that_restores_the_cli_cost_is_not_counted_twice() {
    // A CLI that exits cleanly saves its session cost, and the one resuming that session
    // starts its cumulative `total_cost_usd` from it; each turn must still count once.
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    env.mock.push(Reply::text("one").usage(100, 20));
    env.mock.push(Reply::text("two").usage(50, 7));
    let sup = Supervisor::builder()
        .child(SessionSpec::new("a").options(env.options()))
        .start()
        .await
        .expect("start");
    let a = sup.session("a");
    let first = a
        .stream("first")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    sup.restart_session("a").await.expect("graceful restart");
    let second = a
        .stream("second")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    let turn_cost = |s: &TurnSummary| -> f64 {
        let r = s.result.as_ref().expect("a result");
        r.model_usage_since_last_result
            .as_ref()
            .expect("per-turn model usage (CLI >= 2.1.332)")
            .values()
            .map(|m| m.cost_usd)
            .sum()
    };
    let (one, two) = (turn_cost(&first), turn_cost(&second));
    assert!(one > 0.0 && two > 0.0);
    let report = sup.cost_report().await.expect("report");
    let session = &report.sessions["a"];
    assert_eq!(session.turns, 2);
    assert_eq!(session.usage.input_tokens, 150, "{report:#?}");
    assert!(
        (session.cost_usd - (one + two)).abs() < 1e-9,
        "{} vs {} + {} (cumulative per result: {:?}, {:?})",
        session.cost_usd,
        one,
        two,
        first.cost_usd(),
        second.cost_usd()
    );
    let by_model: f64 = session.model_usage.values().map(|m| m.cost_usd).sum();
    assert!((by_model - session.cost_usd).abs() < 1e-9, "{report:#?}");
    sup.stop().await.expect("stop");
}
