//! `fake-claude`: a stand-in for the `claude` CLI in stream-json mode, for corner
//! cases the real CLI can't produce and as the load generator for throughput
//! benchmarks. It reads NDJSON from stdin and answers on stdout: `initialize`,
//! `interrupt` and `set_model` control requests get a success response, other
//! control subtypes an `unsupported_request` error; each `user` message runs one
//! turn (`system/init`, an assistant `echo: <text>` message, a `result`).
//! `control_response`, `keep_alive`, blank and non-JSON lines are ignored; stdin EOF
//! exits 0. `--version`/`-v` prints `2.1.332 (Claude Code)`; other argv is ignored,
//! except `--resume`/`--session-id` (`=value` or a separate value), which set the
//! session id. Environment variables, all read once at start:
//! `FAKE_CLAUDE_ARGV_FILE` (write argv[1..], one per line),
//! `FAKE_CLAUDE_ENV_FILE` (write the environment as KEY=VALUE lines),
//! `FAKE_CLAUDE_CRASH` (`on_start`: stderr `fatal: boom at start`, exit 2 before
//! reading stdin; `mid_line`: on a user message write init and half an assistant
//! line, stderr `fatal: simulated crash`, exit 3),
//! `FAKE_CLAUDE_STDERR_BYTES=N` (write N bytes of text lines to stderr at start),
//! `FAKE_CLAUDE_SPAWN_CHILD=1` (spawn a grandchild `sleep 1000` at start and leave it),
//! `FAKE_CLAUDE_HANG` (comma-separated: `init` never answers initialize; `turn`
//! emits only the init line of each turn and waits for an interrupt, which ends it
//! with an `error_during_execution` result; `ignore_eof` sleeps forever after EOF),
//! `FAKE_CLAUDE_TURN_DELAY_MS=N` (sleep before answering each user message),
//! `FAKE_CLAUDE_INVALID_UTF8=1` (each turn, after init, emits a line with invalid
//! UTF-8 and a non-JSON `[SandboxDebug] noise` line),
//! `FAKE_CLAUDE_HUGE_LINE=BYTES` (each turn, after init, emits one assistant line of
//! BYTES bytes plus newline, or the ~330-byte minimum, before the echo),
//! `FAKE_CLAUDE_FLOOD=N` with `FAKE_CLAUDE_MSG_BYTES=B` (default 1024): each turn
//! emits N assistant lines of about B bytes (newline included) instead of the echo.
//! `FAKE_CLAUDE_REQUEST=<json>`: each turn, after init, sends that object as a CLI →
//! SDK `control_request` and waits for the SDK's `control_response`, whose JSON becomes
//! the turn's text (`response: {…}`); with `FAKE_CLAUDE_CANCEL=1` it instead waits for
//! the SDK's next control request (answering it), then sends a `control_cancel_request`
//! for its own request — so a test decides when the cancel arrives.
//! `FAKE_CLAUDE_CLEAR=1`: a prompt of exactly `/clear` is answered locally, as the real
//! CLI does: a new session id and a `result` without a model call (`num_turns: 0`, no API
//! time, no cost), so that pools clearing members between requests keep them (off by
//! default: tests rely on the fake answering `/clear` with a model call).

use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VERSION: &str = "2.1.332";
/// Marks a counter slot in the flood template; it becomes `SLOT` decimal digits.
const MARK: &str = "@@N@@";
const SLOT: usize = 12;

/// Serializes a JSON object keeping the keys in the order given (serde_json's
/// `Map` sorts them). Keys and values are single `json!` token trees: `"s"`, `1`, `null`,
/// `{...}`, `[...]`, an identifier or a parenthesized expression.
macro_rules! ordered {
    ($($k:tt: $v:tt),* $(,)?) => {{
        let fields: Vec<String> = vec![$(format!("{}:{}", json!($k), json!($v))),*];
        format!("{{{}}}", fields.join(","))
    }};
}

struct Config {
    crash: String,
    hang: String,
    delay: Option<Duration>,
    invalid_utf8: bool,
    huge_line: Option<u64>,
    flood: Option<u64>,
    request: Option<Value>,
    cancel: bool,
    clear: bool,
}

impl Config {
    fn hang(&self, mode: &str) -> bool {
        self.hang.split(',').any(|h| h.trim() == mode)
    }
}

fn env_num(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let parsed = raw.replace('_', "").trim().parse().ok();
    if parsed.is_none() {
        eprintln!("fake-claude: ignoring {name}={raw:?} (not a number)");
    }
    parsed
}

/// A serialized line whose counter slots are rewritten in place for each message.
struct Template {
    buf: Vec<u8>,
    slots: Vec<usize>,
}

impl Template {
    fn new(line: &str) -> Template {
        let mut t = Template {
            buf: Vec::with_capacity(line.len() + 1),
            slots: Vec::new(),
        };
        for (i, part) in line.split(MARK).enumerate() {
            if i > 0 {
                t.slots.push(t.buf.len());
                t.buf.extend_from_slice(&[b'0'; SLOT]);
            }
            t.buf.extend_from_slice(part.as_bytes());
        }
        t.buf.push(b'\n');
        t
    }

    fn render(&mut self, n: u64) -> &[u8] {
        for &off in &self.slots {
            let mut v = n;
            for digit in self.buf[off..off + SLOT].iter_mut().rev() {
                *digit = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        &self.buf
    }
}

/// The text of a user message: a string content, or its text blocks concatenated.
fn user_text(msg: &Value) -> String {
    match &msg["message"]["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect(),
        _ => String::new(),
    }
}

struct Fake {
    cfg: Config,
    out: BufWriter<File>,
    sid: String,
    /// The first four groups of every line's uuid; the fifth is a sequence number.
    uuid_prefix: String,
    model: Value,
    seq: u64,
    turn_in_progress: bool,
    flood: Option<Template>,
}

impl Fake {
    fn next_uuid(&mut self) -> String {
        self.seq += 1;
        format!("{}-{:012}", self.uuid_prefix, self.seq)
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")
    }

    fn assistant_line(&self, id: &str, text: &str, uuid: &str) -> String {
        let sid = &self.sid;
        ordered! {
            "type": "assistant",
            "message": {"id": id, "type": "message", "role": "assistant", "model": "fake-model",
                "content": [{"type": "text", "text": text}], "stop_reason": null,
                "usage": {"input_tokens": 1, "output_tokens": 1}},
            "parent_tool_use_id": null, "session_id": sid, "uuid": uuid,
        }
    }

    fn echo_line(&mut self, text: &str) -> String {
        let uuid = self.next_uuid();
        self.assistant_line(&format!("msg_fake_{}", self.seq), text, &uuid)
    }

    fn respond(&mut self, id: &Value, response: Result<Value, String>) -> io::Result<()> {
        let response = match response {
            Ok(r) => ordered! {"subtype": "success", "request_id": id, "response": r},
            Err(e) => {
                let code = "unsupported_request";
                ordered! {"subtype": "error", "request_id": id, "error": e, "error_code": code}
            }
        };
        self.write_line(&format!(
            r#"{{"type":"control_response","response":{response}}}"#
        ))?;
        self.out.flush()
    }

    /// Ends a turn: `Some(text)` with a success result, `None` as interrupted.
    fn result(&mut self, text: Option<&str>) -> io::Result<()> {
        let (uuid, sid, is_error) = (self.next_uuid(), &self.sid, text.is_none());
        let (subtype, stop) = if is_error {
            ("error_during_execution", None)
        } else {
            ("success", Some("end_turn"))
        };
        let (key, value) = match text {
            Some(t) => ("result", json!(t)),
            None => ("errors", json!(["[Request interrupted by user]"])),
        };
        let line = ordered! {
            "type": "result", "subtype": subtype, "is_error": is_error, "duration_ms": 1,
            "duration_api_ms": 1, "num_turns": 1, key: value, "stop_reason": stop, "session_id": sid,
            "total_cost_usd": 0.0, "usage": {"input_tokens": 1, "output_tokens": 1},
            "modelUsage": {}, "permission_denials": [], "uuid": uuid,
        };
        self.write_line(&line)?;
        self.out.flush()
    }

    fn control(&mut self, msg: &Value) -> io::Result<()> {
        let id = &msg["request_id"];
        match msg["request"]["subtype"].as_str().unwrap_or_default() {
            "initialize" if self.cfg.hang("init") => Ok(()),
            "initialize" => {
                let pid = std::process::id();
                self.respond(id, Ok(json!({"commands": [], "agents": [],
                    "models": [{"value": "default", "displayName": "Default", "description": "fake"}],
                    "account": {"apiKeySource": "none"}, "output_style": "default",
                    "pid": pid, "claude_code_version": VERSION})))
            }
            "interrupt" => {
                self.respond(id, Ok(json!({"still_queued": []})))?;
                if std::mem::take(&mut self.turn_in_progress) {
                    self.result(None)?;
                }
                Ok(())
            }
            "set_model" => {
                self.model = msg["request"]["model"].clone();
                self.respond(id, Ok(json!({"model": self.model})))
            }
            other => self.respond(
                id,
                Err(format!("Unsupported control request subtype: {other}")),
            ),
        }
    }

    /// `/clear` with `FAKE_CLAUDE_CLEAR=1`: a new conversation, answered without a model.
    fn clear(&mut self) -> io::Result<()> {
        self.sid = random_uuid(self.seq);
        let (uuid, sid) = (self.next_uuid(), &self.sid);
        let line = ordered! {
            "type": "result", "subtype": "success", "is_error": false, "duration_ms": 0,
            "duration_api_ms": 0, "num_turns": 0, "result": "", "stop_reason": null,
            "session_id": sid, "total_cost_usd": 0.0,
            "usage": {"input_tokens": 0, "output_tokens": 0}, "modelUsage": {},
            "permission_denials": [], "uuid": uuid,
        };
        self.write_line(&line)?;
        self.out.flush()
    }

    fn turn(&mut self, msg: &Value, input: &mut impl BufRead) -> io::Result<()> {
        if self.cfg.clear && user_text(msg).trim() == "/clear" {
            return self.clear();
        }
        if let Some(delay) = self.cfg.delay {
            std::thread::sleep(delay);
        }
        let mut text = format!("echo: {}", user_text(msg));
        let (uuid, sid) = (self.next_uuid(), &self.sid);
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let model = self.model.as_str().unwrap_or("fake-model");
        let init = ordered! {
            "type": "system", "subtype": "init", "cwd": cwd, "session_id": sid, "tools": [],
            "model": model, "permissionMode": "default", "claude_code_version": VERSION, "uuid": uuid,
        };
        self.write_line(&init)?;
        if self.cfg.crash == "mid_line" {
            let line = self.echo_line(&text);
            self.out.write_all(&line.as_bytes()[..line.len() / 2])?;
            self.out.flush()?;
            eprintln!("fatal: simulated crash");
            std::process::exit(3);
        }
        if self.cfg.hang("turn") {
            self.turn_in_progress = true;
            return self.out.flush();
        }
        if let Some(request) = self.cfg.request.clone() {
            if let Some(response) = self.ask(request, input)? {
                text = format!("response: {response}");
            }
        }
        if self.cfg.invalid_utf8 {
            self.out
                .write_all(b"{\"type\":\"assistant\",\"bad\":\"\xff\xfe\"}\n")?;
            self.out.write_all(b"[SandboxDebug] noise\n")?;
        }
        if let Some(bytes) = self.cfg.huge_line {
            self.huge_line(bytes)?;
        }
        if let Some(mut template) = self.flood.take() {
            for _ in 0..self.cfg.flood.unwrap_or(0) {
                self.seq += 1;
                self.out.write_all(template.render(self.seq))?;
            }
            self.flood = Some(template);
        } else {
            let line = self.echo_line(&text);
            self.write_line(&line)?;
        }
        self.result(Some(&text))
    }

    /// Sends a CLI → SDK control request; returns the SDK's response envelope, or `None`
    /// when cancelling instead of waiting (or at EOF).
    fn ask(&mut self, request: Value, input: &mut impl BufRead) -> io::Result<Option<Value>> {
        self.seq += 1;
        let id = format!("cli_req_{}", self.seq);
        let line = ordered! {"type": "control_request", "request_id": id, "request": request};
        self.write_line(&line)?;
        self.out.flush()?;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf)? == 0 {
                return Ok(None);
            }
            let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                continue;
            };
            if self.cfg.cancel && msg["type"] == "control_request" {
                self.control(&msg)?;
                let cancel = ordered! {"type": "control_cancel_request", "request_id": id};
                self.write_line(&cancel)?;
                self.out.flush()?;
                return Ok(None);
            }
            if msg["type"] == "control_response" && msg["response"]["request_id"] == json!(id) {
                return Ok(Some(msg["response"].clone()));
            }
        }
    }

    /// The flood line: text padded so that the line, newline included, is about `bytes`.
    fn flood_template(&self, bytes: u64) -> Template {
        let (id, uuid) = (
            format!("msg_fake_{MARK}"),
            format!("{}-{MARK}", self.uuid_prefix),
        );
        let base = Template::new(&self.assistant_line(&id, "", &uuid))
            .buf
            .len() as u64;
        let text = "x".repeat(bytes.saturating_sub(base) as usize);
        Template::new(&self.assistant_line(&id, &text, &uuid))
    }

    /// One assistant line of `bytes` bytes plus newline; the padding goes out in chunks.
    fn huge_line(&mut self, bytes: u64) -> io::Result<()> {
        let line = self.echo_line("@@PAD@@");
        let (head, tail) = line.split_once("@@PAD@@").expect("marker present");
        let chunk = [b'x'; 1 << 16];
        let mut pad = bytes.saturating_sub((head.len() + tail.len()) as u64);
        self.out.write_all(head.as_bytes())?;
        while pad > 0 {
            let n = pad.min(chunk.len() as u64) as usize;
            self.out.write_all(&chunk[..n])?;
            pad -= n as u64;
        }
        self.write_line(tail)
    }
}

/// A UUID-shaped id mixed (splitmix64) from pid, time and `salt`; no rand crate.
fn random_uuid(salt: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut state = (nanos as u64) ^ (u64::from(std::process::id()) << 40) ^ salt;
    let [a, b] = [0; 2].map(|_| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    });
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

fn run() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("--version" | "-v")) {
        println!("{VERSION} (Claude Code)");
        return Ok(());
    }
    if let Some(path) = std::env::var_os("FAKE_CLAUDE_ARGV_FILE") {
        let argv: String = args.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(path, argv)?;
    }
    if let Some(path) = std::env::var_os("FAKE_CLAUDE_ENV_FILE") {
        let vars = std::env::vars_os()
            .map(|(k, v)| format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy()));
        std::fs::write(path, vars.collect::<String>())?;
    }
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    let cfg = Config {
        crash: std::env::var("FAKE_CLAUDE_CRASH").unwrap_or_default(),
        hang: std::env::var("FAKE_CLAUDE_HANG").unwrap_or_default(),
        delay: env_num("FAKE_CLAUDE_TURN_DELAY_MS").map(Duration::from_millis),
        invalid_utf8: flag("FAKE_CLAUDE_INVALID_UTF8"),
        huge_line: env_num("FAKE_CLAUDE_HUGE_LINE"),
        flood: env_num("FAKE_CLAUDE_FLOOD"),
        request: std::env::var("FAKE_CLAUDE_REQUEST")
            .ok()
            .and_then(|r| serde_json::from_str(&r).ok()),
        cancel: flag("FAKE_CLAUDE_CANCEL"),
        clear: flag("FAKE_CLAUDE_CLEAR"),
    };
    if cfg.crash == "on_start" {
        eprintln!("fatal: boom at start");
        std::process::exit(2);
    }
    if let Some(n) = env_num("FAKE_CLAUDE_STDERR_BYTES") {
        let text = "fake-claude: stderr filler line\n".repeat(n as usize / 32 + 1);
        io::stderr().write_all(&text.as_bytes()[..n as usize])?;
    }
    if flag("FAKE_CLAUDE_SPAWN_CHILD") {
        let (null, mut sleep) = (Stdio::null, Command::new("sleep"));
        sleep
            .arg("1000")
            .stdin(null())
            .stdout(null())
            .stderr(null());
        eprintln!(
            "fake-claude: spawned grandchild pid={}",
            sleep.spawn()?.id()
        );
    }

    let mut sid = random_uuid(1);
    for (i, arg) in args.iter().enumerate() {
        for flag in ["--resume", "--session-id"] {
            if let Some(v) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                sid = v.to_string();
            } else if arg == flag {
                sid = args.get(i + 1).cloned().unwrap_or(sid);
            }
        }
    }

    // Write to a dup of fd 1: no LineWriter, so one syscall per BufWriter flush.
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let out = BufWriter::with_capacity(1 << 18, stdout);
    let uuid_prefix = random_uuid(2)[..23].to_string();
    let (model, seq, turn_in_progress, flood) = (Value::Null, 0, false, None);
    let mut fake = Fake {
        cfg,
        out,
        sid,
        uuid_prefix,
        model,
        seq,
        turn_in_progress,
        flood,
    };
    if fake.cfg.flood.is_some() {
        let bytes = env_num("FAKE_CLAUDE_MSG_BYTES").unwrap_or(1024);
        fake.flood = Some(fake.flood_template(bytes));
    }

    let mut input = BufReader::with_capacity(1 << 16, io::stdin().lock());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.trim_ascii().is_empty() {
            continue;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
            eprintln!("fake-claude: ignoring a non-JSON stdin line");
            continue;
        };
        match msg["type"].as_str() {
            Some("control_request") => fake.control(&msg)?,
            Some("user") => fake.turn(&msg, &mut input)?,
            _ => {} // control_response, keep_alive and anything unknown
        }
    }
    fake.out.flush()?;
    if fake.cfg.hang("ignore_eof") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-claude: I/O error: {e}");
            ExitCode::FAILURE
        }
    }
}
