//! `claude-code path` reports each resolution mode: explicit (CLAUDE_CODE_CLI, `--cli`,
//! `cli_path` in the file), bundled (`cli_dir`) and global (`PATH`).

mod support;

use std::{os::unix::fs::PermissionsExt, path::Path};

use support::*;

/// A stand-in `claude` (path resolution only checks that it is an executable file).
fn fake_claude(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, "#!/bin/sh\necho '2.1.332 (Claude Code)'\n").expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `claude-code path` in a temp dir with an empty PATH/HOME, plus `extra` env.
async fn path_output(dir: &Path, extra: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = bare(dir);
    cmd.env("HOME", dir.join("home"))
        .env("PATH", dir.join("empty-path"))
        .env("CLAUDE_CODE_CLI_DIR", dir.join("no-bundle"));
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut all = vec!["path"];
    all.extend_from_slice(args);
    let out = run(&mut cmd, &all).await;
    (out.status.success(), stdout(&out), stderr(&out))
}

#[tokio::test]
async fn path_reports_explicit_from_env_and_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("x/claude");
    fake_claude(&bin);
    let bin_s = bin.to_string_lossy().into_owned();
    let (ok, out, err) = path_output(dir.path(), &[("CLAUDE_CODE_CLI", &bin_s)], &[]).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().next(), Some(bin_s.as_str()));
    assert!(
        out.contains("source: explicit\nwhy: CLAUDE_CODE_CLI is set"),
        "{out}"
    );

    let (ok, out, err) = path_output(dir.path(), &[], &["--cli", &bin_s]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("source: explicit\nwhy: --cli names it"),
        "{out}"
    );
}

#[tokio::test]
async fn path_reports_bundled_from_config_cli_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir
        .path()
        .join("app/bin/node_modules/@anthropic-ai/claude-code/bin/claude.exe");
    fake_claude(&bin);
    std::fs::write(
        dir.path().join("app/claude-code.toml"),
        "cli_path = \"bundled\"\ncli_dir = \"bin\"\n",
    )
    .expect("write config");
    // An empty CLAUDE_CODE_CLI_DIR counts as unset, so the file's cli_dir applies.
    let (ok, out, err) =
        path_output(&dir.path().join("app"), &[("CLAUDE_CODE_CLI_DIR", "")], &[]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().next(),
        Some(bin.to_string_lossy().as_ref()),
        "{out}"
    );
    assert!(out.contains("source: bundled"), "{out}");
    assert!(out.contains("setting: cli_path = bundled (file "), "{out}");
}

#[tokio::test]
async fn path_reports_global_from_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("empty-path/claude");
    fake_claude(&bin);
    let (ok, out, err) = path_output(dir.path(), &[], &[]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().next(),
        Some(bin.to_string_lossy().as_ref()),
        "{out}"
    );
    assert!(out.contains("source: global"), "{out}");
    assert!(out.contains("setting: cli_path = auto (default)"), "{out}");
}

#[tokio::test]
async fn path_fails_with_install_hint_when_nothing_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _out, err) = path_output(dir.path(), &[], &["--cli", "global"]).await;
    assert!(!ok);
    assert!(err.contains("claude CLI not found"), "{err}");
}
