//! The admin servers' web pages: the router's dashboard and dtab
//! playground, and namerd's namespaces. The pages are plain HTML shells;
//! their scripts and style sheet are embedded in the binary (no CDN, so an
//! offline machine shows them too) and served under [`ASSETS`].
//!
//! Everything a page shows comes from JSON and is put into the page as
//! text (never as markup), and every page is served with a
//! Content-Security-Policy that allows only these scripts: a dtab holding
//! `<script>` is shown, never run.

pub mod explain;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// Where the embedded scripts and style sheet are served.
pub const ASSETS: &str = "/admin/ui";

/// The embedded files: name, content type, contents.
const FILES: &[(&str, &str, &str)] = &[
    (
        "common.css",
        "text/css; charset=utf-8",
        include_str!("assets/common.css"),
    ),
    ("common.js", JS, include_str!("assets/common.js")),
    ("dashboard.js", JS, include_str!("assets/dashboard.js")),
    ("playground.js", JS, include_str!("assets/playground.js")),
    ("namerd.js", JS, include_str!("assets/namerd.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// Only the embedded scripts and style sheet run; nothing inline, nothing
/// from elsewhere; the pages may only talk to their own server.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The embedded files under [`ASSETS`], and the dtab helpers every page
/// uses: `POST /admin/dtab/check` and `POST /admin/dtab/explain`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(&format!("{ASSETS}/{{file}}"), get(asset))
        .route("/admin/dtab/check", post(explain::check))
        .route("/admin/dtab/explain", post(explain::explain))
}

async fn asset(UrlPath(file): UrlPath<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // Small, and must change with the binary: always asked again.
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A page: `title`, and the embedded `script` that builds it into
/// `<main>`. `server` names the server kind (`router`, `namerd`) for the
/// header and the scripts.
pub fn page(server: &str, title: &str, script: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · {server}</title>\n\
         <link rel=\"stylesheet\" href=\"{ASSETS}/common.css\">\n</head>\n\
         <body data-server=\"{server}\">\n<header id=\"top\"></header>\n<main id=\"app\"></main>\n\
         <script src=\"{ASSETS}/common.js\"></script>\n\
         <script src=\"{ASSETS}/{script}\"></script>\n</body>\n</html>\n"
    );
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    response
}

/// The embedded files' total size in bytes (kept under 200 KB by a test).
pub fn assets_size() -> usize {
    FILES.iter().map(|(_, _, body)| body.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_stay_small() {
        assert!(assets_size() < 200 * 1024, "{} bytes", assets_size());
    }

    #[test]
    fn pages_allow_only_their_own_scripts() {
        let response = page("router", "dashboard", "dashboard.js");
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.contains("script-src 'self'"));
        assert!(!policy.contains("unsafe-inline"));
    }
}
