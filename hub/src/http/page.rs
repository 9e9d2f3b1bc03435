//! The status page: `GET /` and its assets under `/page/`, embedded in the
//! binary (no build step, no CDN; it works offline), as
//! `docs/admin-api.md` ("Status page") describes.
//!
//! The page holds no data: its script reads the admin API from the browser
//! (with the operator's bearer token, when one is configured), so these
//! routes need no authentication. Every answer carries a strict
//! Content-Security-Policy: scripts, styles and everything else only from
//! the hub itself, no inline code.

use axum::Router;
use axum::http::header::{self, HeaderName};
use axum::response::IntoResponse;
use axum::routing::get;

/// The page's Content-Security-Policy: everything from the hub itself,
/// nothing inline, not framable.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// One embedded file and its content type.
struct Asset {
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("page/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("page/app.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("page/style.css"),
};
const ICON: Asset = Asset {
    content_type: "image/svg+xml",
    body: include_str!("page/icon.svg"),
};

/// The page's routes: `GET /`, `/page/app.js`, `/page/style.css` and
/// `/page/icon.svg`. Merge them outside any admin authentication.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| serve(&INDEX)))
        .route("/page/app.js", get(|| serve(&SCRIPT)))
        .route("/page/style.css", get(|| serve(&STYLE)))
        .route("/page/icon.svg", get(|| serve(&ICON)))
}

/// Answers `asset` with its content type and the page's security headers.
async fn serve(asset: &'static Asset) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
        ],
        asset.body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_code_and_loads_only_its_own_assets() {
        let html = INDEX.body;
        assert!(html.contains(r#"<script src="/page/app.js" defer></script>"#));
        assert!(html.contains(r#"href="/page/style.css""#));
        // CSP forbids inline code; keep the page from needing it.
        assert_eq!(html.matches("<script").count(), 1, "one external script");
        assert!(!html.contains("<style"), "no inline style element");
        assert!(!html.contains(" style="), "no inline style attribute");
        let handlers = html.split(" on").skip(1).filter(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0, "no inline event handler attributes");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!SCRIPT.body.contains("http://") && !SCRIPT.body.contains("https://"));
    }
}
