//! Kept true on upgrade: every [`CliSwitch`] name must still be in the pinned CLI binary.
//! Runs `scripts/cli-switches` (one `grep` pass over the binary) so that a CLI upgrade
//! that drops or renames a switch fails here, loudly, instead of silently losing the gain.

use std::process::Command;

use claude_code::CliSwitch;
use claude_code_tests::{real_cli, workspace_root};

fn run_script(bin: &std::path::Path) -> std::process::Output {
    Command::new(workspace_root().join("scripts/cli-switches"))
        .arg(bin)
        .output()
        .expect("run scripts/cli-switches")
}

#[test]
fn the_pinned_cli_still_contains_every_switch() {
    let out = run_script(&real_cli());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the CLI lost switches the SDK sets; update CliSwitch and the profiles:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut present: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("present ")?.split(' ').next())
        .collect();
    present.sort_unstable();
    let mut want: Vec<&str> = CliSwitch::ALL.iter().map(|s| s.env_var()).collect();
    want.sort_unstable();
    assert_eq!(present, want, "the script checks exactly CliSwitch::ALL");
}

#[test]
fn a_binary_without_the_switches_fails_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("claude");
    // Suffixes of real names do not count: only exact words do.
    std::fs::write(&fake, "PYTEST_DISABLE_TELEMETRY_X DISABLE_GROWTHBOOK\n").expect("write");
    let out = run_script(&fake);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("present DISABLE_GROWTHBOOK 1"), "{stdout}");
    assert!(stdout.contains("MISSING DISABLE_TELEMETRY"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no longer contains"), "{stderr}");
}
