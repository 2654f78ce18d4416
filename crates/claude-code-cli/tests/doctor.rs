//! `claude-code doctor`: all ✓ against the mock with the real CLI (including the online
//! round trip), and ✗ with a fix for a missing CLI and a missing API key.

mod support;

use support::*;

/// The mark and name columns of each row (the details hold paths and timings).
fn rows(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("fix:") && !l.starts_with("  "))
        .map(|l| {
            l.chars()
                .take(18)
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn doctor_is_all_green_against_the_mock() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let out = run(&mut command(&env), &["doctor", "--online"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(
        rows(&text),
        [
            "✓ config file",
            "✓ CLI found",
            "✓ CLI runs",
            "✓ CLI version",
            "✓ API key",
            "✓ CLI config dir",
            "✓ API round trip",
        ],
        "{text}"
    );
    assert!(!text.contains("sk-test-key"));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn doctor_reports_a_missing_cli_and_key_with_fixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = bare(dir.path());
    cmd.env("CLAUDE_CONFIG_DIR", dir.path().join("cfg"));
    let out = run(
        &mut cmd,
        &[
            "doctor",
            "--cli",
            &dir.path().join("missing/claude").to_string_lossy(),
        ],
    )
    .await;
    assert!(!out.status.success());
    let text = stdout(&out);
    assert_eq!(
        rows(&text),
        [
            "✓ config file",
            "✗ CLI found",
            "✗ API key",
            "✓ CLI config dir"
        ],
        "{text}"
    );
    assert!(text.contains("fix: run `claude-code install`"), "{text}");
    assert!(text.contains("fix: export ANTHROPIC_API_KEY="), "{text}");
    assert!(
        stderr(&out).contains("2 check(s) failed"),
        "{}",
        stderr(&out)
    );
}
