//! The web dashboard: static files under `ui/assets/`, embedded into the binary at build time, so
//! running Lakescope needs no front-end build step. The pages call the JSON API (`/api/v1/...`).

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

fn serve(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_owned();
            let mut response = file.data.into_owned().into_response();
            if let Ok(value) = HeaderValue::from_str(&mime) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// Prometheus's expression links (`/graph?g0.expr=…`, the `generatorURL` of the alerts Lakescope
/// sends) open the dashboard's graph page, which reads the same parameters.
fn graph_link(query: Option<String>) -> Redirect {
    match query {
        Some(q) if !q.is_empty() => Redirect::to(&format!("/#/graph?{q}")),
        _ => Redirect::to("/#/graph"),
    }
}

/// `/` (the dashboard), `/ui/<file>` (its scripts and styles) and `/graph` (expression links).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route(
            "/graph",
            get(|RawQuery(q): RawQuery| async move { graph_link(q) }),
        )
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_links_open_the_graph_page_with_their_parameters() {
        let to = |q: Option<&str>| {
            graph_link(q.map(str::to_owned))
                .into_response()
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            to(Some("g0.expr=up%20%3E%201")).as_deref(),
            Some("/#/graph?g0.expr=up%20%3E%201")
        );
        assert_eq!(to(None).as_deref(), Some("/#/graph"));
    }

    #[test]
    fn the_dashboard_files_are_embedded() {
        for name in ["index.html", "app.js", "style.css"] {
            assert!(Assets::get(name).is_some(), "{name} missing");
        }
        let index = Assets::get("index.html").unwrap();
        assert_eq!(index.metadata.mimetype(), "text/html");
    }
}
