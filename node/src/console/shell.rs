//! The page around every view: the unit's name, the navigation, the
//! language toggle, the breadcrumb, and the monthly report's header and
//! signature block that only print.

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};

use super::{
    Console, assets,
    lang::Lang,
    session::{Viewer, url_encode},
};
use crate::access::Action;

/// What the printed monthly report states about its figures.
#[derive(Debug, Clone)]
pub(super) struct Report {
    /// The period, e.g. 2026-10.
    pub(super) period: String,
    /// The summary the figures come from: revision, digest, key id.
    pub(super) signature: Option<(u64, String, String)>,
}

/// A page of the console.
#[derive(Debug)]
pub(super) struct Page<'a> {
    /// Who is looking.
    pub(super) viewer: &'a Viewer,
    /// The node.
    pub(super) console: &'a Console,
    /// The title, after the unit's name.
    pub(super) title: String,
    /// The path of this page with its query, for the language toggle.
    pub(super) here: String,
    /// From the node's region down to the one shown: name and link.
    pub(super) crumbs: Vec<(String, String)>,
    /// The print view: no navigation, no animation.
    pub(super) print: bool,
    /// Whether the page draws charts.
    pub(super) charts: bool,
    /// For the printed report.
    pub(super) report: Option<Report>,
}

fn head(lang: Lang, title: &str, charts: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            link rel="stylesheet" href=(assets::CSS.url());
            @if charts {
                script defer src=(assets::ECHARTS.url()) {}
            }
            script defer src=(assets::JS.url()) data-lang=(lang.t().html_lang) {}
        }
    }
}

impl Page<'_> {
    /// The whole page around `body`.
    pub(super) fn render(self, body: Markup) -> Response {
        let lang = self.viewer.lang;
        let w = lang.t();
        let unit = &self.console.ctx.identity.name;
        let title = if &self.title == unit {
            format!("{} · {}", self.title, w.product)
        } else {
            format!("{} · {} · {}", self.title, unit, w.product)
        };
        let v = self.viewer;
        let markup = html! {
            (DOCTYPE)
            html lang=(w.html_lang) {
                (head(lang, &title, self.charts))
                body class=[self.print.then_some("print")] data-print=(self.print) {
                    header.top.noprint {
                        a.brand href="/" { (unit) " · " (w.product) }
                        nav {
                            a href={ "/figures/" (self.console.ctx.identity.region) } { (w.nav_figures) }
                            a href={ "/completeness/" (self.console.ctx.identity.region) } { (w.nav_completeness) }
                            a href={ "/findings/" (self.console.ctx.identity.region) } { (w.nav_findings) }
                            @if v.may(Action::Write) {
                                a href="/entry" { (w.nav_entry) }
                                a href="/upload" { (w.nav_upload) }
                            }
                        }
                        div.who {
                            a.lang href={ "/lang/" (w.other_lang_code) "?next=" (url_encode(&self.here)) } { (w.other_lang) }
                            span.user { (v.name) " (" (v.role) ")" }
                            form.logout method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { (w.logout) }
                            }
                        }
                    }
                    @if let Some(r) = &self.report {
                        div.report-head.print-only {
                            div.report-title { (self.title) " · " (w.product) (w.monthly_report) }
                            div.report-meta { (w.issuer) "：" (unit) "　" (w.period) "：" (r.period) }
                        }
                    }
                    @if !self.crumbs.is_empty() {
                        nav.crumbs aria-label="breadcrumb" {
                            @for (i, (name, href)) in self.crumbs.iter().enumerate() {
                                @if i > 0 { span.sep { " › " } }
                                @if i + 1 == self.crumbs.len() { span.here { (name) } }
                                @else { a href=(href) { (name) } }
                            }
                        }
                    }
                    main { (body) }
                    @if let Some(r) = &self.report {
                        footer.report-foot.print-only {
                            @if let Some((rev, digest, key)) = &r.signature {
                                p.signature {
                                    (w.revision) " " (rev) " · " (w.digest) " " code { (digest) }
                                    " · " (w.key_id) " " code { (super::params::short(key)) }
                                }
                            }
                            p.stamp { (w.stamp_line) }
                            p.printed { (w.printed_at) " " (super::params::local_time(self.console, self.console.ctx.clock.now_ms())) }
                        }
                    }
                }
            }
        };
        Html(markup.into_string()).into_response()
    }
}

/// A page without navigation (the login page).
pub(super) fn bare_page(lang: Lang, title: &str, body: Markup) -> Html<String> {
    let w = lang.t();
    let markup = html! {
        (DOCTYPE)
        html lang=(w.html_lang) {
            (head(lang, &format!("{title} · {}", w.product), false))
            body.bare {
                header.top {
                    span.brand { (w.product) }
                    div.who { a.lang href={ "/lang/" (w.other_lang_code) "?next=/login" } { (w.other_lang) } }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// An error page: the status, and the message naming the field and rule.
pub(super) fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let w = lang.t();
    let body = html! {
        section.error-page {
            h1 { (w.error_title) " (" (status.as_u16()) ")" }
            p.error role="alert" { (message) }
            p { a href="/" { (w.back_home) } }
        }
    };
    (status, bare_page(lang, w.error_title, body)).into_response()
}
