//! The `claude-code-mock` binary: serves a script file, prints its URL first, exits
//! cleanly on SIGINT, and rejects bad arguments with the usage text.

mod support;

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const BIN: &str = env!("CARGO_BIN_EXE_claude-code-mock");

#[tokio::test]
async fn binary_serves_a_script_file_until_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("script.json");
    std::fs::write(
        &script,
        r#"{"replies": [{"type": "message", "blocks": [{"type": "text", "text": "from file"}]}]}"#,
    )
    .expect("write script");
    let mut child = Command::new(BIN)
        .arg("--script")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mock binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut url = String::new();
    BufReader::new(stdout)
        .read_line(&mut url)
        .await
        .expect("read url");
    let port: u16 = url
        .trim()
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("first stdout line is the url, got {url:?}"));

    let reply = support::post(port, "/v1/messages", &support::turn_body("hi", false))
        .await
        .json();
    assert_eq!(reply["content"][0]["text"], "from file");

    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "INT", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGINT")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn binary_rejects_unknown_arguments_with_usage() {
    let out = Command::new(BIN)
        .arg("--bogus")
        .output()
        .await
        .expect("run mock binary");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown argument: --bogus"), "{stderr}");
    assert!(stderr.contains("usage: claude-code-mock"), "{stderr}");
}
