//! Login and sessions.
//!
//! A person logs in with the token of one of the node's named credentials
//! (the same file, roles and rules as gRPC calls). The session is a random
//! 256-bit id in a cookie that is `Secure`, `HttpOnly` and
//! `SameSite=Strict`; the server keeps what it stands for, ends it after
//! `console.session_idle_minutes` unused or `console.session_max_hours`
//! in all, and checks the credential again on every request, so a
//! credential revoked in the file ends its sessions at once. Every form
//! carries the session's CSRF token, compared in constant time; the login
//! form has its own, bound to a cookie (double submit). Login attempts are
//! limited per client address.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Form,
    extract::{ConnectInfo, FromRequestParts, Query as UrlQuery, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{AppendHeaders, IntoResponse, Redirect, Response},
};
use base64::Engine;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{Refusal, Shared, lang::Lang, listener::PeerAddr, shell};
use crate::{
    access::{Action, Allowed, Role},
    config::ConsoleConfig,
};

/// The session cookie.
pub const SESSION_COOKIE: &str = "tt_session";
/// The login form's CSRF cookie.
const LOGIN_COOKIE: &str = "tt_login";
/// Sessions one node keeps at most; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

/// What a session stands for.
#[derive(Debug, Clone)]
struct Session {
    /// The credential's token, checked again on every request.
    token: String,
    /// The form token.
    csrf: String,
    /// Login time.
    created: Instant,
    /// Last request.
    last: Instant,
}

/// The node's sessions and its login attempts.
#[derive(Debug)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    attempts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    idle: Duration,
    max: Duration,
    logins_per_minute: u32,
}

/// A fresh random id (an upload's, a session's).
pub(super) fn new_id() -> String {
    random_token()
}

/// A random 256-bit value, base64url.
fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| panic!("the system random source failed"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of cookie `name` in the request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for this console: secure, script-proof, never sent
/// by other sites.
fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}")
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    /// No one logged in yet.
    pub fn new(config: &ConsoleConfig) -> Sessions {
        Sessions {
            live: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            idle: Duration::from_secs(u64::from(config.session_idle_minutes) * 60),
            max: Duration::from_secs(u64::from(config.session_max_hours) * 3600),
            logins_per_minute: config.logins_per_minute.max(1),
        }
    }

    /// Starts a session for `token`; returns its id.
    fn start(&self, token: String) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, s| !self.expired(s, now));
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(
            id.clone(),
            Session {
                token,
                csrf: random_token(),
                created: now,
                last: now,
            },
        );
        id
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) > self.idle || now.duration_since(s.created) > self.max
    }

    /// The session `id`, touched; `None` when unknown or expired.
    fn touch(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let s = live.get_mut(id)?;
        if self.expired(s, now) {
            live.remove(id);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    fn end(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Counts a login attempt from `ip`; false once over the limit for the
    /// current minute.
    fn attempt(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if attempts.len() > MAX_SESSIONS {
            attempts.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = attempts.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.logins_per_minute
    }
}

/// The person making a request: logged in, with a credential that is still
/// valid.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The credential's name, e.g. 省厅统计科.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The page language.
    pub lang: Lang,
    session: String,
}

impl Viewer {
    /// Whether the viewer's role allows `action`.
    pub fn may(&self, action: Action) -> bool {
        action.allowed_for(self.role)
    }

    /// A "not allowed" page unless the viewer's role allows `action`.
    pub(crate) fn require(&self, action: Action) -> Result<(), Refusal> {
        if self.may(action) {
            Ok(())
        } else {
            let w = self.lang.t();
            let message = format!("{} ({}: {})", w.not_allowed, self.name, self.role);
            Err(Refusal::new(self.lang, StatusCode::FORBIDDEN, message))
        }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub(crate) fn check_form(&self, token: &str) -> Result<(), Refusal> {
        if equal(token, &self.csrf) {
            Ok(())
        } else {
            Err(Refusal::new(
                self.lang,
                StatusCode::FORBIDDEN,
                self.lang.t().form_expired,
            ))
        }
    }
}

/// Where to send someone who is not logged in: the login page, coming back
/// here afterwards.
fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let encoded: String = url_encode(&next);
    Redirect::to(&format!("/login?next={encoded}")).into_response()
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A local path to go to after login: anything else goes home.
fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Shared) -> Result<Self, Response> {
        let lang = Lang::of(&parts.headers);
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(parts));
        };
        let Some(session) = console.sessions.touch(id) else {
            return Err(to_login(parts));
        };
        match console
            .access
            .authorize(Some(&format!("Bearer {}", session.token)), Action::Read)
        {
            Ok(Allowed::Credential { name, role }) => Ok(Viewer {
                name,
                role,
                csrf: session.csrf,
                lang,
                session: id.to_owned(),
            }),
            // Revoked since login (or the file changed): the session ends.
            _ => {
                console.sessions.end(id);
                Err(to_login(parts))
            }
        }
    }
}

/// `?next=` of the login page.
#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

fn login_form(lang: Lang, next: &str, csrf: &str, error: Option<&str>) -> maud::Markup {
    let w = lang.t();
    html! {
        section.login {
            h1 { (w.login_title) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { (w.token_label) }
                input #token type="password" name="token" autocomplete="current-password" required;
                p.hint { (w.token_hint) }
                button type="submit" { (w.login) }
            }
        }
    }
}

fn login_response(lang: Lang, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let csrf = random_token();
    let body = shell::bare_page(
        lang,
        lang.t().login_title,
        login_form(lang, next, &csrf, error),
    );
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &csrf, Some(3600)),
        )],
        body,
    )
        .into_response()
}

/// The login page.
pub async fn login_page(lang: Lang, UrlQuery(q): UrlQuery<Next>) -> Response {
    let next = local_path(q.next.as_deref().unwrap_or("/")).to_owned();
    login_response(lang, &next, None, StatusCode::OK)
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Checks a token and starts a session.
pub async fn login(
    State(console): State<Shared>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = Lang::of(&headers);
    let w = lang.t();
    let next = local_path(&form.next).to_owned();
    let bound = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| equal(c, &form.csrf));
    if !bound {
        return login_response(lang, &next, Some(w.form_expired), StatusCode::FORBIDDEN);
    }
    if !console.sessions.attempt(peer.ip()) {
        return login_response(
            lang,
            &next,
            Some(w.too_many_logins),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let token = form.token.trim().to_owned();
    match console
        .access
        .authorize(Some(&format!("Bearer {token}")), Action::Read)
    {
        Ok(Allowed::Credential { name, role }) => {
            tracing::info!(credential = %name, role = %role, peer = %peer, "console login");
            let id = console.sessions.start(token);
            let max_age = console.sessions.max.as_secs();
            (
                AppendHeaders([
                    (
                        header::SET_COOKIE,
                        set_cookie(SESSION_COOKIE, &id, Some(max_age)),
                    ),
                    (header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", Some(0))),
                ]),
                Redirect::to(&next),
            )
                .into_response()
        }
        _ => {
            tracing::info!(peer = %peer, "console login refused: unknown credential");
            login_response(lang, &next, Some(w.unknown_token), StatusCode::UNAUTHORIZED)
        }
    }
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session.
pub async fn logout(
    State(console): State<Shared>,
    viewer: Viewer,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Err(refused) = viewer.check_form(&form.csrf) {
        return refused.into_response();
    }
    console.sessions.end(&viewer.session);
    (
        [(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)))],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path("/figures/210000000000"), "/figures/210000000000");
        for outside in [
            "https://elsewhere.example/",
            "//elsewhere.example",
            "/\\x",
            "",
        ] {
            assert_eq!(local_path(outside), "/", "{outside}");
        }
    }

    #[test]
    fn sessions_end_when_idle_and_attempts_are_limited() {
        let sessions = Sessions::new(&ConsoleConfig {
            logins_per_minute: 3,
            ..ConsoleConfig::default()
        });
        let id = sessions.start("tt_x".into());
        assert!(sessions.touch(&id).is_some());
        assert!(sessions.touch("forged").is_none());
        sessions.end(&id);
        assert!(sessions.touch(&id).is_none());
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert!((0..3).all(|_| sessions.attempt(ip)));
        assert!(!sessions.attempt(ip), "the fourth attempt in a minute");
        assert!(sessions.attempt(IpAddr::from([10, 0, 0, 2])));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; tt_session=abc; b=2".parse().expect("h"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
