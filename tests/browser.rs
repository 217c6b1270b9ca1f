//! The listing in a real browser: Debian's headless Chromium driven by fantoccini through
//! chromedriver, which each test starts on a free port.
//!
//! Without /usr/bin/chromedriver these tests print "SKIPPED" and pass, unless `CI` is set: there
//! they fail, so that a missing package cannot hide them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
// fantoccini without a TLS feature needs a plain-HTTP connector from outside: hyper-util's, whose
// `client-legacy` feature fantoccini itself turns on.
use hyper_util::client::legacy::connect::HttpConnector;
use marquee::movies::{MovieList, PageNumber};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use crate::helpers::{Backend, Setup, TestApp, card_slugs, spawn_app, unique};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(10);

/// One browser at a time: two cores, and each test measures timing-sensitive things (scrolling).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// chromedriver and its browser session; quits the browser and kills chromedriver when dropped,
/// panics included.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // blocking on purpose: Drop cannot await, and Chromium must not outlive chromedriver
            let _ = delete_session(self.port, &session);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn delete_session(port: u16, session: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(WAIT))?;
    write!(stream, "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    stream.read_to_end(&mut Vec::new()).map(drop)
}

/// `url::ParseError`, named through reqwest's re-export of `Url` (the url crate is no dependency).
type UrlError = <Url as std::str::FromStr>::Err;

/// A chromedriver command fantoccini has no method for: `POST /session/{id}/{path}` with `body`.
#[derive(Debug)]
struct Post {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for Post {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, UrlError> {
        base.join(&format!("session/{}/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (Method::POST, Some(self.body.to_string()))
    }
}

/// Whether the browser keeps pages in its back/forward cache (Chromium's default) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    Default,
    Off,
}

/// A browser session, with the few things these tests do in it.
struct Browser {
    client: Client,
    _driver: Driver,
}

impl Browser {
    /// A fresh headless Chromium; `None` when chromedriver is missing and this is not CI.
    async fn start() -> Option<Self> {
        Self::start_with(Cache::Default).await
    }

    /// `start`, with or without the back/forward cache.
    async fn start_with(cache: Cache) -> Option<Self> {
        if !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{CHROMEDRIVER} is missing and CI is set: install the chromium and chromium-driver packages"
            );
            eprintln!("SKIPPED: chromedriver not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(unique("marquee_chromium_"));
        let mut driver = Driver { child, port, session: None, profile };
        let status = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + WAIT;
        while !reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "chromedriver did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", driver.profile.display()),
        ];
        if cache == Cache::Off {
            args.push("--disable-features=BackForwardCache".to_owned());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(serde_json::from_value(capabilities).expect("capabilities"))
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        driver.session = client.session_id().await.expect("session id");
        Some(Self { client, _driver: driver })
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    async fn back(&self) {
        self.client.back().await.expect("back");
    }

    /// Runs `script` (a function body) in the page. WebDriver scripts are not subject to the CSP.
    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until the expression `condition` is true in the page.
    async fn wait_for(&self, what: &str, condition: &str) {
        let deadline = Instant::now() + WAIT;
        while self.js(&format!("return !!({condition});")).await != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what} ({condition})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the page to stop scrolling (a smooth scroll, say after a focus change).
    async fn wait_until_still(&self) {
        let deadline = Instant::now() + WAIT;
        let mut last = self.js("return scrollY;").await;
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = self.js("return scrollY;").await;
            if now == last {
                return;
            }
            assert!(Instant::now() < deadline, "the page keeps scrolling");
            last = now;
        }
    }

    /// Clicks the first element matching `css`, as a user would (WebDriver's element click).
    async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.expect(css).click().await.expect("click");
    }

    /// Types `text` into the focused element, key by key.
    async fn type_text(&self, text: &str) {
        let mut keys = KeyActions::new("keyboard".into());
        for c in text.chars() {
            keys = keys.then(KeyAction::Down { value: c }).then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(keys).await.expect("typing");
    }

    /// Presses and releases `key`.
    async fn key(&self, key: Key) {
        let press = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        self.client.perform_actions(press).await.expect("key press");
    }

    /// The console's errors (and CSP violations, failed loads) since the last call.
    async fn console_errors(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(Post { path: "se/log", body: json!({"type": "browser"}) }).await;
        let entries = entries.expect("browser log");
        let entries = entries.as_array().cloned().unwrap_or_default();
        entries.iter().filter(|e| e["level"] == "SEVERE").map(|e| e["message"].to_string()).collect()
    }

    /// The viewport's exact size in CSS pixels (a phone: small, touch, 2x pixels), through the
    /// DevTools protocol: a window size would include the browser's own frame.
    async fn viewport(&self, width: u32, height: u32, phone: bool) {
        let params =
            json!({"width": width, "height": height, "deviceScaleFactor": if phone { 2 } else { 1 }, "mobile": phone});
        let cdp = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params});
        self.client.issue_cmd(Post { path: "goog/cdp/execute", body: cdp }).await.expect("viewport");
    }

    /// Every response takes `ms` more to come, through the DevTools protocol (0: as fast as it is).
    async fn latency(&self, ms: u64) {
        let conditions = json!({"offline": false, "latency": ms, "downloadThroughput": -1, "uploadThroughput": -1});
        for cdp in [
            json!({"cmd": "Network.enable", "params": {}}),
            json!({"cmd": "Network.emulateNetworkConditions", "params": conditions}),
        ] {
            self.client.issue_cmd(Post { path: "goog/cdp/execute", body: cdp }).await.expect("network conditions");
        }
    }

    /// Saves what the viewport shows as screenshots/{name}.png, for people to look at.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write png");
    }

    async fn count(&self, css: &str) -> u64 {
        let n = self.js(&format!("return document.querySelectorAll({css:?}).length;")).await;
        n.as_u64().expect("a count")
    }

    async fn slugs(&self) -> Vec<String> {
        let slugs = self.js("return [...document.querySelectorAll('.movie-card')].map(c => c.dataset.slug);").await;
        serde_json::from_value(slugs).expect("slugs")
    }

    /// Waits until no feed request is under way.
    async fn settle_feed(&self) {
        self.wait_for("the feed to settle", "document.getElementById('feed').getAttribute('aria-busy') === 'false'")
            .await;
    }

    /// Scrolls to the bottom once per count, each time waiting for the feed to hold that many cards.
    async fn scroll_on_to(&self, counts: &[u32]) {
        for n in counts {
            self.settle_feed().await;
            self.scroll_to("document.documentElement.scrollHeight").await;
            self.wait_for("the next page", &format!("document.querySelectorAll('.movie-card').length === {n}")).await;
        }
    }

    /// Scrolls at once (no smooth scrolling) to `y`, an expression.
    async fn scroll_to(&self, y: &str) {
        self.js(&format!("window.scrollTo({{top: {y}, behavior: 'instant'}});")).await;
    }
}

/// The slugs of pages `1..=n` as the server sends them.
async fn slugs_over_http(app: &TestApp, n: u32) -> Vec<String> {
    let mut slugs = Vec::new();
    for page in 1..=n {
        slugs.extend(card_slugs(&app.get_text(&format!("/movies?page={page}")).await.1));
    }
    slugs
}

/// Records, while the page lives, whether a feed load ever showed the indicator and set aria-busy.
const WATCH_LOADING: &str = "
    window.seen = {busy: false, indicator: false};
    new MutationObserver(() => {
        if (document.getElementById('feed').getAttribute('aria-busy') === 'true') seen.busy = true;
        const dots = document.querySelector('#more.htmx-request .more-loading');
        if (dots && getComputedStyle(dots).display !== 'none' && dots.offsetHeight > 0) seen.indicator = true;
    }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['class', 'aria-busy']});";

/// Every resource the current page loaded, as URLs.
const RESOURCES: &str = "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)];";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_loads_pages_in_order_and_back_returns_to_the_same_place() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    browser.goto(&app.url("/")).await;
    browser.wait_for("htmx", "window.htmx").await;
    assert_eq!(browser.count(".movie-card").await, 24);
    browser.js(WATCH_LOADING).await;

    // loads before the end: with half a screen of cards still below the viewport
    browser.scroll_to("document.getElementById('more').offsetTop - 1.5 * innerHeight").await;
    browser.wait_for("page 2", "document.querySelectorAll('.movie-card').length === 48").await;
    browser.scroll_on_to(&[72, 96]).await;
    assert_eq!(browser.js("return seen;").await, json!({"busy": true, "indicator": true}), "no sign of loading");
    assert_eq!(browser.slugs().await, slugs_over_http(&app, 4).await, "the feed differs from pages 1–4");

    // a keyboard user who reaches "Load more films" gets the next page, and lands on its first film
    browser.scroll_on_to(&[120]).await;
    browser.settle_feed().await;
    browser.js("document.querySelector('.more-link').focus();").await;
    browser.wait_for("page 6", "document.querySelectorAll('.movie-card').length === 144").await;
    let focused = "return document.activeElement.closest('.movie-card')?.getAttribute('aria-posinset');";
    assert_eq!(browser.js(focused).await, "121", "focus is not on the first new film");

    // on to page 10, then open a film of it, ten pages deep, and come back
    browser.wait_until_still().await;
    browser.scroll_on_to(&[168, 192, 216, 240]).await;
    browser.settle_feed().await;
    browser
        .js("document.querySelectorAll('.movie-card')[229].scrollIntoView({block: 'center', behavior: 'instant'});")
        .await;
    // a screen before the end, page 11 comes
    browser.wait_for("page 11", "document.querySelectorAll('.movie-card').length === 264").await;
    browser.settle_feed().await;
    let before = browser.js("return scrollY;").await;
    let cards_before = browser.slugs().await;
    let left_at = browser.js("return location.search;").await;
    for url in serde_json::from_value::<Vec<String>>(browser.js(RESOURCES).await).expect("urls") {
        assert!(url.starts_with(&app.base), "the listing loaded {url} from another host");
    }
    browser.click(".movie-card:nth-child(230) h2 a").await;
    browser.wait_for("the detail page", "location.pathname.startsWith('/movies/')").await;
    let title = browser.js("return document.querySelector('h1').textContent;").await;
    let path = browser.js("return location.pathname;").await;
    assert_eq!(path.as_str(), Some(format!("/movies/{}", cards_before[229]).as_str()));
    let (_, detail) = app.get_text(path.as_str().expect("path")).await;
    assert!(detail.contains(&format!("<h1>{}</h1>", title.as_str().expect("title"))), "h1 {title} is not the film's");
    for url in serde_json::from_value::<Vec<String>>(browser.js(RESOURCES).await).expect("urls") {
        assert!(url.starts_with(&app.base), "the detail page loaded {url} from another host");
    }

    // the address had followed the scroll to the last page loaded, and opening the film made it
    // name the film's page
    assert_eq!(left_at, json!("?page=11"), "the address does not follow the scroll");
    browser.back().await;
    browser.wait_for("the listing", "location.search === '?page=10' && document.querySelector('.movie-card')").await;
    assert_eq!(browser.slugs().await, cards_before, "the cards loaded before are gone");
    assert_eq!(browser.js("return scrollY;").await, before, "not back where the visitor left");
    let in_view = "const r = document.querySelectorAll('.movie-card')[229].getBoundingClientRect(); \
                   return r.top >= 0 && r.bottom <= innerHeight;";
    assert_eq!(browser.js(in_view).await, json!(true), "the film opened is out of view");
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

/// Scrolls five pages down the listing, opens the third film of page 5 by clicking it, and presses
/// the browser's Back, at desktop and phone widths: the card is on screen again, its top within
/// the viewport. Returns for each return its pageshow `persisted` (true: restored from the
/// back/forward cache; null: the page was loaded again), and the browser's reasons not to restore.
async fn back_from_a_film_deep_in_the_feed(browser: &Browser, app: &TestApp, tag: &str) -> Vec<(Value, Value)> {
    let mut restored = Vec::new();
    for (width, height, phone) in [(1280, 800, false), (390, 844, true)] {
        browser.viewport(width, height, phone).await;
        browser.goto(&app.url("/")).await;
        browser.wait_for("htmx", "window.htmx").await;
        browser.scroll_on_to(&[48, 72, 96, 120]).await;
        browser.settle_feed().await;
        let card = "document.querySelectorAll('.movie-card')[98]";
        browser.js(&format!("{card}.scrollIntoView({{block: 'center', behavior: 'instant'}});")).await;
        let slug = browser.js(&format!("return {card}.dataset.slug;")).await;
        let slug = slug.as_str().expect("a slug").to_owned();
        browser.js("window.addEventListener('pageshow', e => { window.restored = e.persisted; });").await;
        browser.click(".movie-card:nth-child(99) h2 a").await;
        browser.wait_for("the film", &format!("location.pathname === '/movies/{slug}'")).await;
        browser.back().await;
        let shown = format!("document.querySelector('.movie-card[data-slug=\"{slug}\"]')");
        browser.wait_for("the listing", &format!("location.pathname === '/movies' && {shown}")).await;
        browser.wait_until_still().await;
        let top = browser.js(&format!("return {shown}.getBoundingClientRect().top;")).await;
        let top = top.as_f64().expect("a position");
        // outlined for the people who look at the screenshot
        browser.js(&format!("{shown}.style.outline = '4px solid red';")).await;
        browser.screenshot(&format!("back-{width}-{tag}")).await;
        assert!((0.0..f64::from(height)).contains(&top), "{width}px: the film opened is off screen (top at {top})");
        let reasons = "return performance.getEntriesByType('navigation')[0].notRestoredReasons;";
        restored.push((browser.js("return window.restored ?? null;").await, browser.js(reasons).await));
        assert_eq!(browser.console_errors().await, Vec::<String>::new());
    }
    restored
}

// Without the back/forward cache, Back loads the listing again: it shows the card's page, and the
// card where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_shows_the_film_opened_without_the_back_forward_cache() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start_with(Cache::Off).await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    for (persisted, _) in back_from_a_film_deep_in_the_feed(&browser, &app, "reload").await {
        assert_eq!(persisted, Value::Null, "the page came from the back/forward cache");
    }
}

// With it (Chromium's default), the listing stays eligible: Back restores it as it was left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_restores_the_listing_from_the_back_forward_cache() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    for (persisted, reasons) in back_from_a_film_deep_in_the_feed(&browser, &app, "bfcache").await {
        assert_eq!(persisted, json!(true), "not a back/forward cache restore: {reasons}");
    }
}

// A reader opens a film while the next page is still loading: Back shows that film's card all the
// same, and the feed goes on from there, with the back/forward cache and without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_shows_the_film_opened_while_the_next_page_loads() {
    let _one = ONE_AT_A_TIME.lock().await;
    let app = spawn_app(Backend::Sqlite).await;
    for cache in [Cache::Off, Cache::Default] {
        let Some(browser) = Browser::start_with(cache).await else { return };
        browser.viewport(1280, 800, false).await;
        browser.goto(&app.url("/")).await;
        browser.wait_for("htmx", "window.htmx").await;
        let slug = browser.js("return document.querySelectorAll('.movie-card')[22].dataset.slug;").await;
        let slug = slug.as_str().expect("a slug").to_owned();
        // page 2 is asked for, and takes a second to come; meanwhile the reader opens a film of page 1
        browser.latency(1000).await;
        browser.scroll_to("document.documentElement.scrollHeight").await;
        browser
            .wait_for("page 2 to be asked for", "document.getElementById('feed').getAttribute('aria-busy') === 'true'")
            .await;
        browser.click(".movie-card:nth-child(23) h2 a").await;
        browser.wait_for("the film", &format!("location.pathname === '/movies/{slug}'")).await;
        browser.latency(0).await;
        browser.back().await;
        let shown = format!("document.querySelector('.movie-card[data-slug=\"{slug}\"]')");
        browser.wait_for("the listing", &format!("location.pathname === '/movies' && {shown}")).await;
        browser.wait_until_still().await;
        let top = browser.js(&format!("return {shown}.getBoundingClientRect().top;")).await;
        let top = top.as_f64().expect("a position");
        assert!((0.0..800.0).contains(&top), "{cache:?}: the film opened is off screen (top at {top})");
        // and a fling to the bottom brings the next page
        let cards = browser.count(".movie-card").await;
        let flung = Instant::now();
        while browser.count(".movie-card").await == cards {
            assert!(flung.elapsed() < Duration::from_secs(4), "{cache:?}: no next page after the return");
            browser.scroll_to("document.documentElement.scrollHeight").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(browser.console_errors().await, Vec::<String>::new());
    }
}

// A reader flings to the bottom again and again: every next page arrives while they do, and none
// waits for the "Load more films" button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flinging_to_the_bottom_never_stalls_the_feed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let bound = Duration::from_secs(4);
    for (width, height, phone) in [(1280, 800, false), (390, 844, true)] {
        browser.viewport(width, height, phone).await;
        browser.goto(&app.url("/")).await;
        browser.wait_for("htmx", "window.htmx").await;
        for page in 2..=12_u64 {
            let flung = Instant::now();
            while browser.count(".movie-card").await < page * 24 {
                assert!(flung.elapsed() < bound, "{width}px: page {page} did not come within {bound:?} of flinging");
                browser.scroll_to("document.documentElement.scrollHeight").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let slugs = browser.slugs().await;
        assert_eq!(slugs[..12 * 24], slugs_over_http(&app, 12).await, "{width}px: the feed differs from pages 1–12");
        assert_eq!(browser.console_errors().await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_changes_the_list_and_the_scroll_goes_on_in_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    browser.goto(&app.url("/")).await;
    browser.wait_for("htmx", "window.htmx").await;
    // a person picks a genre, then a sort: each change swaps the list and the address follows
    for (name, value) in [("genre", "drama"), ("sort", "votes")] {
        let pick = format!(
            "const s = document.querySelector('select[name={name}]'); s.value = '{value}'; \
             s.dispatchEvent(new Event('change', {{bubbles: true}}));"
        );
        browser.js(&pick).await;
    }
    browser.wait_for("the list's address", "location.search === '?genre=drama&sort=votes'").await;
    browser.wait_for("the list", "document.querySelector('h1').textContent === 'Drama films, most voted first'").await;
    let app = &app;
    let want =
        |n: u32| async move { card_slugs(&app.get_text(&format!("/movies?genre=drama&sort=votes&page={n}")).await.1) };
    let first = want(1).await;
    browser
        .wait_for("the cards", &format!("document.querySelector('.movie-card')?.dataset.slug === {:?}", first[0]))
        .await;
    assert_eq!(browser.slugs().await, first);
    assert_eq!(browser.js("return document.querySelectorAll('form.filters').length;").await, json!(1));
    // scrolling goes on in the same list
    browser.scroll_to("document.documentElement.scrollHeight").await;
    browser.wait_for("page 2", "document.querySelectorAll('.movie-card').length === 48").await;
    let mut both = first.clone();
    both.extend(want(2).await);
    assert_eq!(browser.slugs().await, both);
    browser.scroll_to("0").await;
    browser.screenshot("list-drama-by-votes").await;
    // a reload opens the same list, its controls set
    browser.goto(&app.url("/movies?genre=drama&sort=votes")).await;
    let chosen = "return [...document.querySelectorAll('form.filters select')].map(s => s.value);";
    assert_eq!(browser.js(chosen).await, json!(["drama", "", "", "votes"]));
    // a film opened from the list, and its "Back to the list" returns to it, at the same card
    browser.wait_for("htmx", "window.htmx").await;
    browser
        .js("document.querySelectorAll('.movie-card')[13].scrollIntoView({block: 'center', behavior: 'instant'});")
        .await;
    // (the list's page 2 may load meanwhile, and the address name it: opening a film of page 1
    // makes it name page 1 again, the page a reload would need to show the card)
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser.settle_feed().await;
    let before = browser.js("return scrollY;").await;
    let left = json!(app.url("/movies?genre=drama&sort=votes"));
    browser.click(".movie-card:nth-child(14) h2 a").await;
    browser.wait_for("the film", &format!("location.pathname === '/movies/{}'", first[13])).await;
    assert_eq!(browser.js("return document.querySelector('p.back a').textContent;").await, json!("← Back to the list"));
    browser.click("p.back a").await;
    browser.wait_for("the list", &format!("location.href === {left} && document.querySelector('.movie-card')")).await;
    assert_eq!(browser.js("return scrollY;").await, before, "not back at the card");
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

// Keyboard only: search, open a result, come back, go on scrolling the results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyboard_user_searches_opens_a_result_and_goes_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    browser.goto(&app.url("/movies/the-godfather-1972")).await;
    browser.wait_for("htmx", "window.htmx").await;
    // skip link, site name, then the search field
    for _ in 0..3 {
        browser.key(Key::Tab).await;
    }
    assert_eq!(browser.js("return document.activeElement.id;").await, json!("site-q"));
    for c in "man".chars() {
        browser.type_text(&c.to_string()).await;
    }
    // the results come as they type, the address follows, the focus stays in the field
    browser.wait_for("the results", "document.querySelector('h1')?.textContent === 'Films matching “man”'").await;
    browser.wait_for("the address", "location.search === '?q=man'").await;
    assert_eq!(browser.js("return document.activeElement.id;").await, json!("site-q"));
    let first = card_slugs(&app.get_text("/search?q=man").await.1);
    assert_eq!(browser.slugs().await, first);
    browser.screenshot("search-man").await;
    // Tab to the first result (the field's button, the lede's "See every film", then the first
    // card's link) and open it
    for _ in 0..3 {
        browser.key(Key::Tab).await;
    }
    let focused = "return document.activeElement.closest('.movie-card')?.dataset.slug;";
    assert_eq!(browser.js(focused).await, json!(first[0]));
    browser.key(Key::Enter).await;
    browser.wait_for("the film", &format!("location.pathname === '/movies/{}'", first[0])).await;
    // back to the results, as they were
    browser.back().await;
    browser
        .wait_for("the results again", "location.pathname === '/search' && document.querySelector('.movie-card')")
        .await;
    assert_eq!(browser.slugs().await, first);
    // and on: the next page of the same results, from the keyboard's "Load more"
    browser.js("document.querySelector('.more-link').focus();").await;
    browser.key(Key::Enter).await;
    browser.wait_for("page 2", "document.querySelectorAll('.movie-card').length === 48").await;
    let mut both = first.clone();
    both.extend(card_slugs(&app.get_text("/search?q=man&page=2").await.1));
    assert_eq!(browser.slugs().await, both);
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

/// axe-core 4.14.1 (npm package `axe-core`, MPL-2.0), vendored for the tests only: the site never
/// serves it.
const AXE: &str = include_str!("vendor/axe-4.14.1.min.js");

// The accessibility checker people use, on every kind of page: no serious or critical violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_finds_nothing_serious_on_any_kind_of_page() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let run = "const done = arguments[arguments.length - 1];
        axe.run(document).then(r => done(r.violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.html)}))),
          e => done([{id: 'axe failed', help: String(e)}]));";
    for (name, width, height, phone) in [("desktop", 1280, 900, false), ("phone", 390, 844, true)] {
        browser.viewport(width, height, phone).await;
        for path in [
            "/",
            "/movies?genre=comedy&decade=1990&sort=rating",
            "/search?q=man",
            "/movies/jurassic-park-1993",
            "/movies?page=0",
        ] {
            browser.goto(&app.url(path)).await;
            browser.wait_for("htmx", "window.htmx").await;
            browser.js(AXE).await;
            let found = browser.client.execute_async(run, Vec::new()).await.expect("axe runs");
            assert_eq!(found, json!([]), "{name} {path}: serious or critical violations");
        }
    }
    // and the checker does see one: an image without a text alternative is critical
    browser
        .js("document.getElementById('main').insertAdjacentHTML('beforeend', '<img src=\"/static/favicon.svg\">');")
        .await;
    let found = browser.client.execute_async(run, Vec::new()).await.expect("axe runs");
    assert_eq!(found[0]["id"], "image-alt", "{found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_page_ends_the_feed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = Setup::new(Backend::Sqlite).page_size(500).spawn().await;
    let listing =
        app.service.list_page(&MovieList::default(), PageNumber::FIRST).await.expect("page 1").expect("films");
    let total = u64::try_from(listing.total).expect("a count");
    let last = total.div_ceil(500);
    browser.goto(&app.url(&format!("/movies?page={}", last - 1))).await;
    browser.wait_for("htmx", "window.htmx").await;
    let end = "document.documentElement.scrollHeight";
    browser.scroll_to(end).await;
    let all = total - (last - 2) * 500;
    browser.wait_for("the last page", &format!("document.querySelectorAll('.movie-card').length === {all}")).await;
    browser.wait_for("the end message", "document.querySelector('.more-end')").await;
    let message = browser.js("return document.querySelector('.more-end').textContent;").await;
    let says_total = |m: &str| m.contains("every film") && m.replace(',', "").contains(&format!(" {total} "));
    assert!(message.as_str().is_some_and(says_total), "end message: {message}");

    // scrolling on asks for nothing more
    let requests =
        "return performance.getEntriesByType('resource').filter(e => e.initiatorType === 'xmlhttprequest').length;";
    browser.scroll_to(end).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(browser.js(requests).await, json!(1), "more requests after the end");
    assert_eq!(browser.count(".movie-card").await, all);
    assert_eq!(browser.count("#more [data-hx-get], .more-link").await, 0, "a trigger is left after the end");
    // the footer is reachable at the bottom
    let footer = "const r = document.querySelector('.site-footer').getBoundingClientRect(); \
                  return r.bottom <= innerHeight + 1 && r.top >= 0;";
    assert_eq!(browser.js(footer).await, json!(true));
    browser.screenshot("listing-end").await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

/// The first request for page 2 fails (it is sent to a URL that 400s); Retry asks again.
const FAIL_NEXT_FEED_REQUEST: &str = "
    const open = XMLHttpRequest.prototype.open;
    let failures = 1;
    XMLHttpRequest.prototype.open = function (method, url, ...rest) {
        if (failures > 0 && String(url).includes('/movies?page=')) { failures -= 1; url = '/movies?page=abc'; }
        return open.call(this, method, url, ...rest);
    };";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_offers_retry() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    browser.goto(&app.url("/")).await;
    browser.wait_for("htmx", "window.htmx").await;
    browser.js(FAIL_NEXT_FEED_REQUEST).await;
    browser.scroll_to("document.documentElement.scrollHeight").await;
    browser.wait_for("the error", "document.querySelector('#more [role=alert]')").await;
    let alert = browser.js("return document.querySelector('#more [role=alert]').innerText;").await;
    assert!(alert.as_str().is_some_and(|t| t.contains("Couldn't load more films.")), "alert: {alert}");
    assert_eq!(browser.js("return document.querySelector('#more [role=alert] button').textContent;").await, "Retry");
    assert_eq!(browser.js("return document.getElementById('feed').getAttribute('aria-busy');").await, "false");
    assert_eq!(browser.count(".movie-card").await, 24);
    browser.screenshot("listing-retry").await;
    let errors = browser.console_errors().await;
    // the browser and htmx report the failure itself, and nothing else
    assert!(errors.iter().all(|e| e.contains("abc") || e.contains("Error Code 400")), "{errors:?}");

    browser.click("#more [role=alert] button").await;
    browser.wait_for("page 2", "document.querySelectorAll('.movie-card').length === 48").await;
    assert_eq!(browser.slugs().await, slugs_over_http(&app, 2).await);
    assert_eq!(browser.count("#more [role=alert]").await, 0, "the error stays after a successful retry");
    assert_eq!(browser.count("#more [data-hx-get='/movies?page=3']").await, 2, "no trigger for page 3");
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

/// Desktop and phone: nothing wider than the screen, focus visible; screenshots for people.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_desktop_and_phone_screens() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let overflow = "return [...document.querySelectorAll('body *')]
        .filter(e => { const r = e.getBoundingClientRect();
                       return r.width > 0 && (r.left < -1 || r.right > innerWidth + 1); })
        .map(e => e.outerHTML.slice(0, 80)).filter(h => !h.includes('visually-hidden'));";
    for (name, width, height, phone) in [("desktop", 1280, 900, false), ("phone", 390, 844, true)] {
        browser.viewport(width, height, phone).await;
        for (page, path) in [("listing", "/"), ("detail", "/movies/inception-2010"), ("error", "/movies?page=0")] {
            browser.goto(&app.url(path)).await;
            browser.wait_for("htmx", "window.htmx").await;
            assert_eq!(browser.js("return innerWidth;").await, json!(width));
            assert_eq!(browser.js(overflow).await, json!([]), "{name} {page}: wider than the screen");
            browser.screenshot(&format!("{page}-{name}")).await;
            let errors = browser.console_errors().await;
            // an error page's own status is reported by the browser: expected there, and only there
            let expected = |e: &String| page == "error" && e.contains("status of 400");
            assert!(errors.iter().all(expected), "{name} {page}: {errors:?}");
        }
    }
    // keyboard focus on a card is visible: skip link, site name, the search field and its button,
    // the list's four controls and its button, then the first film
    browser.viewport(1280, 900, false).await;
    browser.goto(&app.url("/")).await;
    for _ in 0..10 {
        browser.key(Key::Tab).await;
    }
    let focused = browser.js("return document.activeElement.closest('.movie-card') !== null;").await;
    assert_eq!(focused, json!(true), "the tenth Tab does not reach the first film");
    let ring =
        "const s = getComputedStyle(document.activeElement, '::after'); return [s.outlineStyle, s.outlineWidth];";
    assert_eq!(browser.js(ring).await, json!(["solid", "3px"]), "no visible focus ring");
    browser.screenshot("listing-focus").await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}
