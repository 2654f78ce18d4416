//! The CLI profiles measured flag by flag: the CLI's defaults, `CliProfile::Lean`,
//! `CliProfile::Minimal` and each `CliSwitch` alone, with the real CLI against a mock
//! that replies at once (on loopback: the side traffic the switches turn off cannot leave
//! this machine, so online the gains are likely larger). For each configuration, medians
//! over `REPS` repetitions:
//!
//! - **init**: cold start to a ready session (`Session::start`: spawn + initialize);
//! - **one-shot**: start + one prompt to its `result` (the stop is not timed);
//! - **resume**: `--resume` of that one-shot's conversation + one prompt to its `result`
//!   (what a supervisor's restart does once it noticed the death: restart-to-answer);
//! - **first turn**: the first prompt on a pre-initialised session (a warm spare, without
//!   the blank-prompt warm-up);
//! - **turn**: later prompts on that warm session;
//! - **CPU**: CPU seconds of the one-shot's CLI (itself and reaped helpers) at its result;
//! - **peak RSS**: `VmHWM` of the warm session's CLI after its turns;
//! - **idle RSS / idle CPU**: `VmRSS` at the end of, and CPU per minute over, an idle
//!   window of `IDLE_SECS` during which every configuration's warm CLI sits idle (it
//!   begins `SETTLE_SECS`, default 2, after the last warm turn);
//! - **helpers**: processes below the CLI right after initialize (live ones; helpers that
//!   already exited show in its CPU as reaped children).
//!
//! Configurations alternate within each repetition (in a rotating order), so drift in
//! machine load hits all alike. Ratios are against the CLI's defaults in the same run.
//!
//! `cargo bench -p claude-code-host-tests --bench cli_profile` (env `REPS`, default 3; `TURNS`
//! per warm session after the first, default 3; `IDLE_SECS`, default 10; `CONFIGS`, a
//! comma list of `default`, `lean`, `minimal` and switch variable names, default all).
//! Under `cargo test`: a smoke run of `default,lean`, one repetition, a 1 s idle window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use claude_code::{CliProfile, CliSwitch, Options, Session};
use claude_code_tests::{peak_rss_kib, real_cli, rss_kib, wait_until_gone, Reply, Script, TestEnv};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Clock ticks per second for `/proc/<pid>/stat`.
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds of a process and its reaped children (utime + stime + cutime + cstime).
fn cpu_secs(pid: u32, tck: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let Some(close) = stat.rfind(')') else {
        return f64::NAN;
    };
    // Fields after the command: state is field 3, utime 14 .. cstime 17.
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let tick = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok());
    match (tick(14), tick(15), tick(16), tick(17)) {
        (Some(a), Some(b), Some(c), Some(d)) => (a + b + c + d) / tck,
        _ => f64::NAN,
    }
}

/// Live processes below `pid` (children, grandchildren, …).
fn descendants(pid: u32) -> usize {
    let mut parent = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(info) = claude_code_tests::proc_info(p) {
                if info.state != 'Z' {
                    parent.insert(p, info.ppid);
                }
            }
        }
    }
    parent
        .keys()
        .filter(|&&p| {
            let mut cur = p;
            for _ in 0..64 {
                match parent.get(&cur) {
                    Some(&pp) if pp == pid => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .count()
}

/// A configuration under test.
#[derive(Clone)]
struct Config {
    name: String,
    profile: CliProfile,
    switch: Option<CliSwitch>,
}

impl Config {
    fn apply(&self, o: Options) -> Options {
        let o = o.cli_profile(self.profile);
        match self.switch {
            Some(s) => o.cli_switch(s, true),
            None => o,
        }
    }
}

fn all_configs() -> Vec<Config> {
    let mut v = vec![
        Config {
            name: "default".into(),
            profile: CliProfile::Default,
            switch: None,
        },
        Config {
            name: "lean".into(),
            profile: CliProfile::Lean,
            switch: None,
        },
        Config {
            name: "minimal".into(),
            profile: CliProfile::Minimal,
            switch: None,
        },
    ];
    v.extend(CliSwitch::ALL.into_iter().map(|s| Config {
        name: s.env_var().to_string(),
        profile: CliProfile::Default,
        switch: Some(s),
    }));
    v
}

/// Everything measured for one configuration, one sample per entry.
#[derive(Default)]
struct Samples {
    init: Vec<f64>,
    oneshot: Vec<f64>,
    resume: Vec<f64>,
    first: Vec<f64>,
    turn: Vec<f64>,
    cpu: Vec<f64>,
    peak_rss: Vec<f64>,
    idle_rss: Vec<f64>,
    idle_cpu: Vec<f64>,
    helpers: Vec<f64>,
}

async fn turn(session: &Session, prompt: String) -> Duration {
    let started = Instant::now();
    let text = session
        .stream(prompt.as_str())
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    let took = started.elapsed();
    assert_eq!(text, format!("echo: {prompt}"));
    took
}

/// One-shot then resume of its conversation; returns nothing, records samples.
async fn oneshot_and_resume(opts: &Options, tag: &str, s: &mut Samples, tck: f64) {
    let started = Instant::now();
    let session = Session::start(opts.clone()).await.expect("one-shot start");
    s.init.push(ms(started.elapsed()));
    let prompt = format!("one-shot {tag}");
    let text = session
        .stream(prompt.as_str())
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    s.oneshot.push(ms(started.elapsed()));
    assert_eq!(text, format!("echo: {prompt}"));
    let pid = session.pid().expect("running");
    s.cpu.push(cpu_secs(pid, tck));
    let id = session.session_id().expect("session id");
    session.stop().await.expect("stop");

    let started = Instant::now();
    let session = Session::start(opts.clone().resume(id))
        .await
        .expect("resume start");
    let prompt = format!("resumed {tag}");
    let text = session
        .stream(prompt.as_str())
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    s.resume.push(ms(started.elapsed()));
    assert_eq!(text, format!("echo: {prompt}"));
    session.stop().await.expect("stop");
}

/// A warm session: started (timed), then its first and later turns; left running for the
/// idle window.
async fn warm(opts: &Options, tag: &str, turns: usize, s: &mut Samples) -> Session {
    let started = Instant::now();
    let session = Session::start(opts.clone()).await.expect("warm start");
    s.init.push(ms(started.elapsed()));
    let pid = session.pid().expect("running");
    s.helpers.push(descendants(pid) as f64);
    s.first
        .push(ms(turn(&session, format!("first {tag}")).await));
    for i in 0..turns {
        s.turn
            .push(ms(turn(&session, format!("turn {i} {tag}")).await));
    }
    s.peak_rss
        .push(peak_rss_kib(pid).map_or(f64::NAN, |k| k as f64 / 1024.0));
    session
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("cli_profile: bench");
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let reps = env_usize("REPS", if full { 3 } else { 1 }).max(1);
    let turns = env_usize("TURNS", 3).max(1);
    let idle = Duration::from_secs(env_usize("IDLE_SECS", if full { 10 } else { 1 }) as u64);
    let settle = Duration::from_secs(env_usize("SETTLE_SECS", if full { 2 } else { 0 }) as u64);
    let wanted = std::env::var("CONFIGS").ok().unwrap_or_else(|| {
        if full {
            String::new()
        } else {
            "default,lean".into()
        }
    });
    let configs: Vec<Config> = all_configs()
        .into_iter()
        .filter(|c| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == c.name))
        .collect();
    assert!(
        configs.first().is_some_and(|c| c.name == "default"),
        "CONFIGS must include default (the ratios are against it)"
    );
    let tck = clk_tck();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let cli = real_cli();
        // Not TestEnv::options: it sets two of the switches for every test. Inherit only
        // what a process needs, so the caller's environment cannot switch anything on.
        let base = Options::new()
            .cli_path(cli.as_path())
            .cwd(env.cwd.path())
            .inherit_env(["PATH", "HOME", "USER", "LANG", "TERM"])
            .env("ANTHROPIC_BASE_URL", env.mock.url())
            .env("ANTHROPIC_API_KEY", "sk-test-key")
            .env("CLAUDE_CONFIG_DIR", env.config.path().to_string_lossy())
            .env("CLAUDE_CODE_TMPDIR", env.tmp.path().to_string_lossy())
            .env("CLAUDE_RS_TEST_MARKER", &env.marker);
        let version = std::process::Command::new(&cli)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        // Warm the page cache and the mock once.
        claude_code::query("warm up", base.clone().cli_profile(CliProfile::Default))
            .await
            .expect("warm-up");

        let mut samples: Vec<Samples> = configs.iter().map(|_| Samples::default()).collect();
        let bench_start = Instant::now();
        for rep in 0..reps {
            let mut live = Vec::new();
            for k in 0..configs.len() {
                let i = (k + rep) % configs.len();
                let opts = configs[i].apply(base.clone());
                let tag = format!("{}-{rep}", configs[i].name);
                oneshot_and_resume(&opts, &tag, &mut samples[i], tck).await;
                live.push((i, warm(&opts, &tag, turns, &mut samples[i]).await));
            }
            // Every configuration's warm CLI idles through the same window, after a settle
            // for the work that follows the last turn.
            tokio::time::sleep(settle).await;
            let before: Vec<f64> = live
                .iter()
                .map(|(_, s)| cpu_secs(s.pid().expect("running"), tck))
                .collect();
            tokio::time::sleep(idle).await;
            for ((i, session), before) in live.iter().zip(before) {
                let pid = session.pid().expect("running");
                let per_min = (cpu_secs(pid, tck) - before) * 60.0 / idle.as_secs_f64();
                samples[*i].idle_cpu.push(per_min);
                samples[*i]
                    .idle_rss
                    .push(rss_kib(pid).map_or(f64::NAN, |k| k as f64 / 1024.0));
            }
            for (_, session) in live {
                session.stop().await.expect("stop");
            }
            eprintln!("rep {}/{reps} done at {:.0} s", rep + 1, bench_start.elapsed().as_secs_f64());
        }

        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        println!(
            "CLI {version}, {date}, {reps} repetitions, {turns} warm turns after the first, \
             {} s idle window, {} cores",
            idle.as_secs(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!();
        println!(
            "| configuration | init ms | one-shot ms | resume ms | first turn ms | turn ms | \
             CPU s | peak RSS MB | idle RSS MB | idle CPU s/min | helpers |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let row = |s: &Samples| {
            [
                median(&s.init),
                median(&s.oneshot),
                median(&s.resume),
                median(&s.first),
                median(&s.turn),
                median(&s.cpu),
                median(&s.peak_rss),
                median(&s.idle_rss),
                median(&s.idle_cpu),
                median(&s.helpers),
            ]
        };
        for (c, s) in configs.iter().zip(&samples) {
            let r = row(s);
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.3} | {:.0} |",
                c.name, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]
            );
        }
        println!();
        println!("Ratios against the CLI's defaults (same run; lower is better):");
        println!();
        println!(
            "| configuration | init | one-shot | resume | first turn | turn | CPU | peak RSS | \
             idle RSS | idle CPU |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let d = row(&samples[0]);
        for (c, s) in configs.iter().zip(&samples).skip(1) {
            let r = row(s);
            let q: Vec<String> = (0..9).map(|k| format!("{:.2}", r[k] / d[k])).collect();
            println!("| {} | {} |", c.name, q.join(" | "));
        }
        println!();
        // The targets, for the profiles.
        for (c, s) in configs.iter().zip(&samples).skip(1) {
            if c.switch.is_some() {
                continue;
            }
            let r = row(s);
            let check = |what: &str, k: usize, target: f64| {
                let q = r[k] / d[k];
                format!(
                    "{what} {q:.2} (<= {target}: {})",
                    if q <= target { "met" } else { "MISSED" }
                )
            };
            println!(
                "{}: {}; {}; {}; {}; {}; {}",
                c.name,
                check("init", 0, 0.85),
                check("one-shot", 1, 0.85),
                check("warm first turn", 3, 0.75),
                check("restart-to-answer (resume)", 2, 0.9),
                check("idle CPU", 8, 0.75),
                check("idle RSS", 7, 0.95),
            );
        }
        let left = tokio::task::block_in_place(|| {
            wait_until_gone(Duration::from_secs(30), || env.leftovers())
        });
        assert!(left.is_empty(), "leftover processes: {left:#?}");
    });
}
