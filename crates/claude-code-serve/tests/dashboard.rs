//! The dashboard at `GET /` and its feed `GET /v1/events`: the served HTML over plain
//! HTTP, and the page end to end in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/install-browser`) driven through chromedriver
//! with fantoccini, against a host running the real CLI and the project's mock API.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use claude_code_serve::{store::Store, Host, HostConfig, Scope};
use claude_code_tests::{eventually, Reply, Script, TestEnv};
use fantoccini::{key::Key, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// In the environment of chromedriver and so of every browser process it starts.
const MARKER_KEY: &str = "CLAUDE_RS_DASHBOARD_TEST";
/// How long the browser may take for anything the test waits on.
const PATIENCE: Duration = Duration::from_secs(60);

async fn host(env: &TestEnv) -> Host {
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false);
    Host::start(config).await.expect("host starts")
}

/// A host whose state store holds a token: every request needs one.
async fn host_with_token(env: &TestEnv, data: &Path, tenant: &str) -> (Host, String) {
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .data_dir(data);
    let host = Host::start(config).await.expect("host starts");
    let token = Store::open(data)
        .expect("store")
        .create_token(tenant, Scope::Write)
        .expect("token")
        .secret;
    (host, token)
}

fn with_token(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

async fn create(host: &Host, name: &str) {
    create_as(host, name, None).await
}

async fn create_as(host: &Host, name: &str, token: Option<&str>) {
    let req = reqwest::Client::new().post(format!("{}/v1/sessions", host.url()));
    let r = with_token(req, token)
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201, "create {name}");
}

async fn page(host: &Host) -> (reqwest::header::HeaderMap, String) {
    page_as(host, None).await
}

async fn page_as(host: &Host, token: Option<&str>) -> (reqwest::header::HeaderMap, String) {
    let req = reqwest::Client::new().get(format!("{}/", host.url()));
    let r = with_token(req, token).send().await.expect("GET /");
    assert_eq!(r.status().as_u16(), 200);
    let headers = r.headers().clone();
    (headers, r.text().await.expect("body"))
}

/// The build's target directory: `CARGO_TARGET_DIR` when set, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    let root = claude_code_tests::workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir), // an absolute dir replaces the root
        None => root.join("target"),
    }
}

// ---- the served page, over plain HTTP ----------------------------------------------

#[tokio::test]
async fn the_page_is_server_rendered_html_with_nothing_from_other_hosts() {
    let env = TestEnv::new(Script::new()).await;
    let host = host(&env).await;
    create(&host, "alpha").await;
    let (headers, html) = page(&host).await;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        header("content-type").starts_with("text/html"),
        "{headers:?}"
    );
    assert!(
        header("content-security-policy").contains("connect-src 'self'"),
        "{headers:?}"
    );
    assert!(
        html.contains(r#"<tr data-name="alpha"><td class="name">alpha</td>"#),
        "the session row is rendered on the server: {html}"
    );
    assert!(html.contains(r#"<option value="alpha">alpha</option>"#));
    assert!(html.contains(r#"<span class="ready">ready</span> · online"#));
    assert!(!html.contains("offline-banner"), "online: no banner");
    assert!(!html.contains("{{"), "every placeholder is filled");
    // Served by the binary itself: no CDN, no other host, works offline.
    for external in ["http://", "https://", "src=\"//", "href=\"//"] {
        assert!(!html.contains(external), "the page refers to {external}…");
    }
    assert!(html.contains("<script>") && html.contains("<style>"));
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn offline_the_page_says_sessions_talk_to_the_built_in_mock() {
    let env = TestEnv::new(Script::new()).await;
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options().env_remove("ANTHROPIC_BASE_URL"))
        .offline(true);
    let host = Host::start(config).await.expect("host");
    let (_, html) = page(&host).await;
    assert!(html.contains(r#"id="offline-banner""#), "{html}");
    assert!(html.contains("built-in mock Messages API"), "{html}");
    assert!(html.contains("No ANTHROPIC_API_KEY"), "{html}");
    assert!(html.contains("no sessions yet"), "{html}");
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn with_tokens_the_page_is_a_shell_without_one_and_the_feed_a_401() {
    let env = TestEnv::new(Script::new()).await;
    let data = tempfile::tempdir().expect("data dir");
    let (host, token) = host_with_token(&env, data.path(), "acme").await;
    create_as(&host, "private-plan", Some(&token)).await;

    for wrong in [None, Some("cch_nobody_nothing")] {
        let (_, html) = page_as(&host, wrong).await;
        assert!(
            html.contains(r#"<body data-auth="required">"#),
            "{wrong:?}: {html}"
        );
        assert!(html.contains("a token is needed"), "{wrong:?}: {html}");
        assert!(
            !html.contains("private-plan"),
            "{wrong:?}: no session shown"
        );
        let req = reqwest::Client::new().get(format!("{}/v1/events", host.url()));
        let r = with_token(req, wrong).send().await.expect("feed");
        assert_eq!(r.status().as_u16(), 401, "{wrong:?}");
        let err: Value = r.json().await.expect("json");
        assert_eq!(err["code"], "unauthorized", "{wrong:?}: {err}");
    }
    let (_, html) = page_as(&host, Some(&token)).await;
    assert!(html.contains(r#"<body data-auth="ok">"#), "{html}");
    assert!(html.contains(r#"<tr data-name="private-plan">"#), "{html}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

/// Reads one SSE event from a streamed body: `(name, data)`, skipping keep-alives.
async fn next_event(r: &mut reqwest::Response, buf: &mut String) -> Option<(String, Value)> {
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let name = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if let Some(name) = name {
                let value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
                return Some((name.to_string(), value));
            }
        }
        let chunk = r.chunk().await.ok()??;
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

#[tokio::test]
async fn the_feed_sends_the_sessions_at_once_then_every_second_and_ends_when_the_host_drains() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok").usage(10, 5))).await;
    let host = host(&env).await;
    create(&host, "fed").await;
    let turn = reqwest::Client::new()
        .post(format!("{}/v1/sessions/fed/messages", host.url()))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .expect("turn");
    assert_eq!(turn.status().as_u16(), 200);

    let mut feed = reqwest::Client::new()
        .get(format!("{}/v1/events", host.url()))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("feed");
    assert_eq!(feed.status().as_u16(), 200);
    let mut buf = String::new();
    let (name, first) =
        tokio::time::timeout(Duration::from_secs(5), next_event(&mut feed, &mut buf))
            .await
            .expect("the first event comes at once")
            .expect("an event");
    assert_eq!(name, "sessions");
    assert_eq!(first["sessions"][0]["name"], "fed", "{first}");
    assert_eq!(first["sessions"][0]["status"], "live", "{first}");
    assert_eq!(first["totals"]["turns"], 1, "{first}");
    assert!(
        first["totals"]["cost_usd"]
            .as_f64()
            .is_some_and(|c| c > 0.0),
        "{first}"
    );
    assert_eq!(
        first["health"],
        json!({"status": "ready", "offline": false})
    );
    let (name, second) = next_event(&mut feed, &mut buf)
        .await
        .expect("a second event");
    assert_eq!(name, "sessions");
    assert!(
        second["at"].as_u64() >= first["at"].as_u64(),
        "{first} then {second}"
    );

    // The open feed does not hold the host up: draining ends it.
    tokio::time::timeout(Duration::from_secs(30), host.shutdown())
        .await
        .expect("the host stops with a feed open")
        .expect("shutdown");
    while let Some((name, _)) = next_event(&mut feed, &mut buf).await {
        assert_eq!(name, "sessions");
    }
    env.assert_no_leftovers().await;
}

// ---- the page in headless Chromium -------------------------------------------------

/// chromedriver on a free loopback port, started as a child of the test. Dropping it
/// kills chromedriver and every browser process it started (they carry a marker in
/// their environment), so a failing test leaves no orphan.
struct Browser {
    driver: Child,
    marker: String,
    port: u16,
    profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for (bin, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(bin).is_file(),
                "{bin} is missing (Debian's {package}): run scripts/install-browser"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let marker = format!("{}-{port}", std::process::id());
        std::fs::create_dir_all(target_dir()).expect("target dir");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!(
                "--log-path={}",
                target_dir().join("dashboard-chromedriver.log").display()
            ))
            .env(MARKER_KEY, &marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let browser = Browser {
            driver,
            marker,
            port,
            profile: tempfile::tempdir().expect("a profile dir"),
        };
        eventually(PATIENCE, "chromedriver listens", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop)
        })
        .await;
        browser
    }

    /// A WebDriver session in a new headless Chromium.
    async fn client(&self) -> Client {
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            // This machine's network is closed: no background connections to try.
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--window-size=1280,1000".to_string(),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session through chromedriver")
    }

    /// chromedriver and the browser processes it started that are still there.
    fn processes(&self) -> Vec<claude_code_tests::ProcInfo> {
        claude_code_tests::leftovers(claude_code_tests::processes_with_env(&format!(
            "{MARKER_KEY}={}",
            self.marker
        )))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        for p in self.processes() {
            if p.pid != self.driver.id() {
                let _ = Command::new("kill")
                    .args(["-9", &p.pid.to_string()])
                    .status();
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Waits (fantoccini's wait, polling the page) for an element matching `xpath`.
async fn wait_for(client: &Client, what: &str, xpath: &str) {
    if let Err(e) = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(xpath))
        .await
    {
        let body = match client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        panic!("waiting for {what} ({xpath}): {e}; the page reads:\n{body}");
    }
}

/// The PNG's pixels are not all one colour (a blank or failed render is).
fn assert_not_blank(png_bytes: &[u8]) -> (u32, u32) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let frame = reader.next_frame(&mut pixels).expect("decode the PNG");
    let pixels = &pixels[..frame.buffer_size()];
    let step = frame.color_type.samples(); // one byte per sample after normalising
    let first = &pixels[..step];
    let distinct = pixels.chunks(step).filter(|p| *p != first).count();
    assert!(
        distinct > pixels.len() / step / 100,
        "the screenshot is (nearly) one colour: {distinct} pixels differ from the first"
    );
    (frame.width, frame.height)
}

#[tokio::test]
async fn in_chromium_the_page_shows_the_sessions_and_streams_a_reply() {
    const ANSWER: &str = "Hello from the mock, streamed into the page";
    let env = TestEnv::new(Script::new().fallback(Reply::text(ANSWER).usage(40, 12))).await;
    let host = host(&env).await;
    create(&host, "chat").await;
    let browser = Browser::start().await;
    let client = browser.client().await;

    client
        .goto(&format!("{}/", host.url()))
        .await
        .expect("load /");
    assert_eq!(client.title().await.expect("title"), "claude-code host");
    wait_for(
        &client,
        "the server-rendered session row",
        "//table[@id='sessions']//tr[@data-name='chat']/td[2][.='live']",
    )
    .await;
    wait_for(&client, "the live feed", "//*[@id='feed-state'][.='live']").await;
    let token_form = client.find(Locator::Id("token-form")).await.expect("form");
    assert!(
        !token_form.is_displayed().await.expect("displayed?"),
        "no token asked for while the host accepts the request"
    );

    // A prompt to the existing session: the reply streams in, the row counts the turn.
    let prompt = client
        .find(Locator::Id("prompt"))
        .await
        .expect("prompt box");
    prompt.send_keys("say hello").await.expect("type");
    client
        .find(Locator::Id("send"))
        .await
        .expect("send button")
        .click()
        .await
        .expect("click send");
    wait_for(
        &client,
        "the streamed reply",
        &format!("//pre[@id='reply'][contains(., '{ANSWER}')]"),
    )
    .await;
    wait_for(
        &client,
        "the end of the turn",
        "//*[@id='reply-status'][@data-state='done']",
    )
    .await;
    wait_for(
        &client,
        "the feed counting the turn",
        "//tr[@data-name='chat']/td[4][.='1']",
    )
    .await;
    let turn = env.mock.turn_requests();
    assert!(
        turn.last()
            .is_some_and(|r| r.user_texts().iter().any(|t| t.contains("say hello"))),
        "the prompt reached the API through the real CLI"
    );

    // A new session typed into the form: created, then asked; the feed lists it.
    client
        .find(Locator::Id("new-name"))
        .await
        .expect("new name box")
        .send_keys("fresh")
        .await
        .expect("type");
    client
        .find(Locator::Id("send"))
        .await
        .expect("send button")
        .click()
        .await
        .expect("click send");
    wait_for(
        &client,
        "the second turn's end",
        "//*[@id='reply-status'][@data-state='done']",
    )
    .await;
    wait_for(
        &client,
        "the new session in the table",
        "//tr[@data-name='fresh']/td[4][.='1']",
    )
    .await;
    let reply = client
        .find(Locator::Id("reply"))
        .await
        .expect("reply")
        .text()
        .await
        .expect("reply text");
    assert_eq!(reply, ANSWER);

    let shot = client.screenshot().await.expect("screenshot");
    let path = target_dir().join("dashboard.png");
    std::fs::write(&path, &shot).expect("save the screenshot");
    let (w, h) = assert_not_blank(&shot);
    assert!(w >= 800 && h >= 600, "{w}x{h}");
    eprintln!("dashboard screenshot: {}", path.display());

    client.close().await.expect("close the browser");
    drop(browser);
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn in_chromium_the_page_asks_for_a_token_retries_with_it_and_keeps_it() {
    const ANSWER: &str = "Authorised answer";
    let env = TestEnv::new(Script::new().fallback(Reply::text(ANSWER))).await;
    let data = tempfile::tempdir().expect("data dir");
    let (host, token) = host_with_token(&env, data.path(), "acme").await;
    create_as(&host, "guarded", Some(&token)).await;
    let browser = Browser::start().await;
    let client = browser.client().await;

    client
        .goto(&format!("{}/", host.url()))
        .await
        .expect("load /");
    // Navigation sends no token: a shell, then the feed's 401 opens the token form.
    wait_for(
        &client,
        "the token form",
        "//form[@id='token-form'][not(@hidden)]",
    )
    .await;
    assert!(
        client
            .find_all(Locator::Css("tr[data-name]"))
            .await
            .expect("rows")
            .is_empty(),
        "no session before a token"
    );
    let field = client
        .find(Locator::Id("token"))
        .await
        .expect("token field");
    // Typed, then Enter submits the form.
    field
        .send_keys(&format!("cch_wrong_token{}", Key::Enter))
        .await
        .expect("type");
    wait_for(
        &client,
        "the refusal of a wrong token",
        "//*[@id='token-error'][contains(., 'refused')]",
    )
    .await;
    let field = client
        .find(Locator::Id("token"))
        .await
        .expect("token field");
    field
        .send_keys(&format!("{token}{}", Key::Enter))
        .await
        .expect("type");
    wait_for(&client, "the live feed", "//*[@id='feed-state'][.='live']").await;
    wait_for(
        &client,
        "the tenant's session",
        "//tr[@data-name='guarded']/td[2][.='live']",
    )
    .await;

    // Turns carry the token too.
    let prompt = client
        .find(Locator::Id("prompt"))
        .await
        .expect("prompt box");
    prompt.send_keys("hello?").await.expect("type");
    client
        .find(Locator::Id("send"))
        .await
        .expect("send")
        .click()
        .await
        .expect("click");
    wait_for(
        &client,
        "the streamed reply",
        &format!("//pre[@id='reply'][contains(., '{ANSWER}')]"),
    )
    .await;
    wait_for(
        &client,
        "the end of the turn",
        "//*[@id='reply-status'][@data-state='done']",
    )
    .await;

    // The token is kept: a reload asks for nothing.
    client.refresh().await.expect("reload");
    wait_for(
        &client,
        "the session after a reload",
        "//tr[@data-name='guarded']/td[4][.='1']",
    )
    .await;
    let form = client.find(Locator::Id("token-form")).await.expect("form");
    assert!(!form.is_displayed().await.expect("displayed?"));

    client.close().await.expect("close the browser");
    drop(browser);
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn dropping_the_browser_leaves_no_process_behind() {
    let browser = Browser::start().await;
    let client = browser.client().await;
    client.goto("about:blank").await.expect("a page");
    let marker = format!("{MARKER_KEY}={}", browser.marker);
    assert!(
        claude_code_tests::processes_with_env(&marker).len() > 1,
        "chromedriver and Chromium run"
    );
    drop(client); // not closed: as if the test had failed
    drop(browser);
    let left = claude_code_tests::wait_until_gone(Duration::from_secs(15), || {
        claude_code_tests::leftovers(claude_code_tests::processes_with_env(&marker))
    });
    assert!(left.is_empty(), "left behind: {left:#?}");
}
