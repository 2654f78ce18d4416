//! Configuration as the binary sees it: file < environment < flags, shown by
//! `claude-code config` (a snapshot of the resolved values and the CLI arguments), and
//! bad files reported with file, line and key.

mod support;

use support::*;

const FILE: &str = r#"model = "file-model"
system_prompt = "from the file"
max_turns = 2
permission_mode = "plan"
allowed_tools = ["Read", "Grep"]
"#;

#[tokio::test]
async fn config_layers_file_then_env_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("claude-code.toml"), FILE).expect("write");
    let mut cmd = bare(dir.path());
    cmd.env("CLAUDE_MODEL", "env-model")
        .env("CLAUDE_CODE_MAX_TURNS", "3")
        .env("CLAUDE_CODE_PERMISSION_MODE", "acceptEdits")
        .env("ANTHROPIC_API_KEY", "sk-never-printed");
    let out = run(&mut cmd, &["config", "--max-turns", "4", "--cli", "global"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("sk-never-printed"));
    let file = dir.path().join("claude-code.toml");
    let file = file.canonicalize().unwrap_or(file);
    let expected = format!(
        r#"# file: {f}
api_key_env = "ANTHROPIC_API_KEY"  # default
model = "env-model"  # env CLAUDE_MODEL
cli_path = "global"  # flag
cli_version = "2.1.332"  # default
cli_dir = (unset)  # default
system_prompt = "from the file"  # file {f}
append_system_prompt = (unset)  # default
max_turns = "4"  # flag
permission_mode = "acceptEdits"  # env CLAUDE_CODE_PERMISSION_MODE
allowed_tools = "Read,Grep"  # file {f}
disallowed_tools = (unset)  # default
cwd = (unset)  # default
cli_profile = "lean"  # default
serve.listen = "127.0.0.1:8787"  # default
serve.data_dir = "{d}/xdg-data/claude-code"  # default
serve.max_body_bytes = "1048576"  # default
serve.spares = "1"  # default
serve.idle_timeout_secs = "600"  # default
serve.drain_timeout_secs = "30"  # default
serve.on_disconnect = "finish"  # default
serve.credential_proxy = "true"  # default
serve.session_budget_usd = (unset)  # default
serve.session_requests_per_minute = (unset)  # default
supervisor.strategy = "one_for_one"  # default
supervisor.max_restarts = "3"  # default
supervisor.max_seconds = "5"  # default
audit.jsonl = (unset)  # default
cluster.url = (unset)  # default
cluster.node_name = (unset)  # default
cluster.heartbeat_secs = "2"  # default
cluster.lease_secs = "15"  # default
cluster.pool_ack_secs = "15"  # default
cluster.placement = "capacity"  # default
cluster.creds_file = (unset)  # default
cluster.user = (unset)  # default
cluster.password_env = (unset)  # default
cluster.password_file = (unset)  # default
cluster.token_env = (unset)  # default
cluster.token_file = (unset)  # default
cluster.tls = "false"  # default
cluster.tls_ca = (unset)  # default
cluster.tls_cert = (unset)  # default
cluster.tls_key = (unset)  # default
# api key: ANTHROPIC_API_KEY is set
# cli env (lean profile): CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_DISABLE_FEATURE_FLAGS=1 DISABLE_GROWTHBOOK=1 CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL=1
# cli args: --output-format=stream-json --input-format=stream-json --system-prompt=from the file --model=env-model --max-turns=4 --allowedTools=Read,Grep --permission-mode=acceptEdits --verbose
"#,
        f = file.display(),
        d = file.parent().expect("dir").display()
    );
    assert_eq!(
        text.replace(
            &dir.path().display().to_string(),
            &file.parent().expect("dir").display().to_string()
        ),
        expected
    );
}

#[tokio::test]
async fn config_names_the_cluster_secret_variables_never_their_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("claude-code.toml"),
        "[cluster]\nurl = \"tls://nats.internal:4222\"\nuser = \"web\"\npassword_env = \"NATS_PASSWORD\"\ntls_ca = \"ca.pem\"\n",
    )
    .expect("write");
    let mut cmd = bare(dir.path());
    cmd.env("NATS_PASSWORD", "pw-never-printed-4c1e");
    let out = run(&mut cmd, &["config"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("pw-never-printed"), "{text}");
    assert!(text.contains("cluster.user = \"web\"  # file"), "{text}");
    assert!(
        text.contains("cluster.password_env = \"NATS_PASSWORD\"  # file"),
        "{text}"
    );
    assert!(text.contains("cluster.tls_ca = \""), "{text}");
    assert!(
        text.contains("# cluster password: NATS_PASSWORD is set"),
        "{text}"
    );
    let out = run(&mut bare(dir.path()), &["config"]).await;
    assert!(
        stdout(&out).contains("# cluster password: NATS_PASSWORD is not set"),
        "{}",
        stdout(&out)
    );
    // A password written in the file is refused, with the file and line, not repeated.
    std::fs::write(
        dir.path().join("claude-code.toml"),
        "[cluster]\nuser = \"web\"\npassword = \"pw-in-the-file-9d\"\n",
    )
    .expect("write");
    let out = run(&mut bare(dir.path()), &["config"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("claude-code.toml:3:"), "{err}");
    assert!(err.contains("password_env"), "{err}");
    assert!(!err.contains("pw-in-the-file"), "{err}");
}

#[tokio::test]
async fn config_shows_the_cli_profile_from_env_and_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = bare(dir.path());
    cmd.env("CLAUDE_CODE_CLI_PROFILE", "default");
    let out = run(&mut cmd, &["config"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("cli_profile = \"default\"  # env CLAUDE_CODE_CLI_PROFILE"),
        "{text}"
    );
    assert!(
        text.contains("# cli env (default profile): none (the CLI's defaults)"),
        "{text}"
    );
    let mut cmd = bare(dir.path());
    cmd.env("CLAUDE_CODE_CLI_PROFILE", "default");
    let out = run(&mut cmd, &["config", "--cli-profile", "minimal"]).await;
    let text = stdout(&out);
    assert!(text.contains("cli_profile = \"minimal\"  # flag"), "{text}");
    assert!(text.contains("CLAUDE_CODE_DISABLE_CLAUDE_MDS=1"), "{text}");
    let mut cmd = bare(dir.path());
    let out = run(&mut cmd, &["config", "--cli-profile", "fast"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--cli-profile"), "{}", stderr(&out));
}

#[tokio::test]
async fn bad_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.toml");
    std::fs::write(&file, "model = \"m\"\n\npermision_mode = \"plan\"\n").expect("write");
    let mut cmd = bare(dir.path());
    cmd.env("CLAUDE_CODE_CONFIG", &file);
    let out = run(&mut cmd, &["config"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:", file.display())), "{err}");
    assert!(err.contains("key `permision_mode`"), "{err}");

    std::fs::write(&file, "max_turns = -1\n").expect("write");
    let out = run(
        &mut bare(dir.path()),
        &["--config", &file.to_string_lossy(), "query", "x"],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(":1:") && err.contains("key `max_turns`"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_env_value_names_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = bare(dir.path());
    cmd.env("CLAUDE_CODE_MAX_TURNS", "lots");
    let out = run(&mut cmd, &["config"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("CLAUDE_CODE_MAX_TURNS"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn config_lists_what_the_host_declares() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("claude-code.toml"),
        r#"[serve]
listen = "127.0.0.1:9000"
[supervisor]
strategy = "rest_for_one"
[admission]
max_live = 8
[[sessions]]
name = "assistant"
restart = "transient"
[[pools]]
name = "workers"
size = 4
[templates.reviewer]
system_prompt = "You review Rust"
[limits]
max_sessions = 20
[tenants.acme]
max_spend_usd = 5.0
"#,
    )
    .expect("write");
    let out = run(&mut bare(dir.path()), &["config"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "serve.listen = \"127.0.0.1:9000\"  # file ",
        "supervisor.strategy = \"rest_for_one\"  # file ",
        "supervisor.max_restarts = \"3\"  # default",
        "# admission: max_live=8\n",
        "# session default/assistant (restart transient)\n",
        "# pool workers (size 4, warm_spares 0, max_queue 64, queue_timeout_secs 30)\n",
        "# template reviewer\n",
        "# limits: max_sessions=20\n",
        "# tenant acme limits: max_sessions=20 max_spend_usd=5\n",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
}
