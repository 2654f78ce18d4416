//! `claude-code install` / `uninstall` through the real npm client, offline: npm runs with
//! `npm_config_offline=true` and is served from its cache (which `scripts/install-cli`
//! filled with the pinned tarball), so these tests never reach the network.

mod support;

use std::path::Path;

use support::*;

/// `claude-code` with npm forced offline.
fn offline(dir: &Path) -> tokio::process::Command {
    let mut cmd = bare(dir);
    cmd.env("npm_config_offline", "true")
        .env("npm_config_update_notifier", "false");
    cmd
}

fn installed(dir: &Path) -> std::path::PathBuf {
    dir.join("node_modules/@anthropic-ai/claude-code/bin/claude.exe")
}

#[tokio::test]
async fn install_is_verified_idempotent_repairable_and_relocatable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("release/bin");
    let dir_s = dir.to_string_lossy().into_owned();

    let out = run(&mut offline(tmp.path()), &["install", "--dir", &dir_s]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("integrity"), "{}", stderr(&out));
    assert!(installed(&dir).is_file());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("release"))
        .expect("read release dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["bin"], "no staging directories left behind");

    // Second install: a no-op.
    let before = std::fs::metadata(installed(&dir))
        .and_then(|m| m.modified())
        .expect("mtime");
    let out = run(&mut offline(tmp.path()), &["install", "--dir", &dir_s]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("already installed"),
        "{}",
        stdout(&out)
    );
    let after = std::fs::metadata(installed(&dir))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after);

    // A corrupted binary is detected, and replaced with --force.
    std::fs::write(installed(&dir), b"not a binary").expect("corrupt");
    let out = run(&mut offline(tmp.path()), &["install", "--dir", &dir_s]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = run(
        &mut offline(tmp.path()),
        &["install", "--dir", &dir_s, "--force"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&mut offline(tmp.path()), &["install", "--dir", &dir_s]).await;
    assert!(
        stdout(&out).contains("already installed"),
        "{}",
        stdout(&out)
    );

    // Relocatable: move the release elsewhere and run a query with only the bundled CLI
    // (no dev CLI, nothing on PATH).
    let moved = tmp.path().join("elsewhere");
    std::fs::rename(tmp.path().join("release"), &moved).expect("move release");
    let env = TestEnv::new(Script::new().reply(Reply::text("from the bundled CLI"))).await;
    let mut cmd = command(&env);
    cmd.env_remove("CLAUDE_CODE_CLI")
        .env("CLAUDE_CODE_CLI_DIR", moved.join("bin"))
        .env("PATH", tmp.path().join("empty"));
    let out = run(&mut cmd, &["query", "hi", "--cli", "bundled"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from the bundled CLI\n");
    let mut path = bare(tmp.path());
    path.env("CLAUDE_CODE_CLI_DIR", moved.join("bin"));
    let out = run(&mut path, &["path"]).await;
    assert!(stdout(&out).contains("source: bundled"), "{}", stdout(&out));

    let moved_s = moved.join("bin").to_string_lossy().into_owned();
    let out = run(&mut bare(tmp.path()), &["uninstall", "--dir", &moved_s]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!moved.join("bin").exists());
}

#[tokio::test]
async fn install_without_npm_says_how_to_get_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = offline(tmp.path());
    cmd.env("PATH", tmp.path().join("empty"));
    let out = run(
        &mut cmd,
        &[
            "install",
            "--dir",
            &tmp.path().join("bin").to_string_lossy(),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("npm not found"), "{}", stderr(&out));
    assert!(!tmp.path().join("bin").exists());
}

#[tokio::test]
async fn install_and_uninstall_refuse_directories_they_did_not_make() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("mine");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), "keep me").expect("write");
    let dir_s = dir.to_string_lossy().into_owned();
    for args in [["install", "--dir", &dir_s], ["uninstall", "--dir", &dir_s]] {
        let out = run(&mut offline(tmp.path()), &args).await;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("was not created by `claude-code install`"),
            "{}",
            stderr(&out)
        );
    }
    assert!(dir.join("notes.txt").is_file());
}

#[tokio::test]
async fn killed_install_leaves_no_partial_binary_in_the_target() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    // A fake npm that writes half a binary into its --prefix, reports through a FIFO
    // that it got there, then hangs until it is killed.
    let fake_bin = tmp.path().join("fake-bin");
    std::fs::create_dir(&fake_bin).expect("mkdir");
    let npm = fake_bin.join("npm");
    std::fs::write(
        &npm,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --prefix ] && prefix=$2; shift; done\n\
         d=\"$prefix/node_modules/@anthropic-ai/claude-code/bin\"\nmkdir -p \"$d\"\n\
         printf half > \"$d/claude.exe\"\nchmod +x \"$d/claude.exe\"\n\
         echo started > \"$FAKE_NPM_FIFO\"\nexec sleep 1000\n",
    )
    .expect("write fake npm");
    std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let fifo = tmp.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());

    let dir = tmp.path().join("release/bin");
    let mut cmd = bare(tmp.path());
    cmd.env("PATH", format!("{}:/usr/bin:/bin", fake_bin.display()))
        .env("FAKE_NPM_FIFO", &fifo)
        .args(["install", "--dir", &dir.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let child = cmd.spawn().expect("start install");
    let pgid = child.id().expect("pid");
    // Blocks until the fake npm has written its half binary.
    let reader = fifo.clone();
    let said = tokio::task::spawn_blocking(move || std::fs::read_to_string(reader))
        .await
        .expect("join")
        .expect("read fifo");
    assert_eq!(said.trim(), "started");

    let killed = std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait_with_output().await.expect("wait").status;
    assert!(!status.success());

    assert!(
        !dir.exists(),
        "the target must not exist after a killed install"
    );
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("release"))
        .expect("read release")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with(".claude-code-install-")),
        "only a staging directory may remain: {names:?}"
    );
}
