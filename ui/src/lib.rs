//! The web dashboard: static files under `ui/assets/`, embedded into the binary at build time, so
//! running Lakescope needs no front-end build step. The pages call the JSON API (`/api/v1/...`).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// `/` (the dashboard) and `/ui/<file>` (its scripts and styles).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_files_are_embedded() {
        for name in ["index.html", "app.js", "style.css"] {
            assert!(Assets::get(name).is_some(), "{name} missing");
        }
        let index = Assets::get("index.html").unwrap();
        assert_eq!(index.metadata.mimetype(), "text/html");
    }
}
