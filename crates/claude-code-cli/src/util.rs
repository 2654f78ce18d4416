//! Small helpers shared by the subcommands: terminal detection, compact tool-use
//! summaries, human-readable sizes and times, and finding programs on `PATH`.

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use crate::error::CliError;

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// Writes `text` to stdout and flushes, so streamed text shows as it arrives.
pub fn out(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(CliError::io("cannot write to stdout"))
}

/// `Name(main argument)` for a tool use, cut to one short line.
pub fn tool_summary(name: &str, input: &Value) -> String {
    let main = [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
    ]
    .iter()
    .find_map(|k| input.get(*k).and_then(Value::as_str))
    .map(str::to_string)
    .unwrap_or_else(|| {
        if input.as_object().is_some_and(|o| o.is_empty()) {
            String::new()
        } else {
            input.to_string()
        }
    });
    format!("{name}({})", truncate(&main, 70))
}

/// The first line of `s`, at most `max` characters (with `…` when cut).
pub fn truncate(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    let cut = line.chars().count() > max || s.trim_end().contains('\n');
    let mut t: String = line.chars().take(max).collect();
    if cut {
        t.push('…');
    }
    t
}

/// `1.2 MB`-style size.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn utc_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The first executable `name` on `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The CLI's config directory: `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
pub fn claude_config_dir() -> Option<PathBuf> {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => std::env::var_os("HOME").map(|h| Path::new(&h).join(".claude")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_times_sizes_and_tool_uses() {
        assert_eq!(utc_time(UNIX_EPOCH), "1970-01-01 00:00");
        assert_eq!(
            utc_time(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29 12:34"
        );
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500_000), "1.5 MB");
        assert_eq!(
            tool_summary("Bash", &serde_json::json!({"command": "echo hi\nmore"})),
            "Bash(echo hi…)"
        );
        assert_eq!(
            tool_summary("TodoRead", &serde_json::json!({})),
            "TodoRead()"
        );
    }
}
