//! The dashboard in a real headless Chromium: what the services page shows, how it refreshes,
//! and what clicking does.

mod common;

use common::{Server, run_python};

#[test]
fn the_services_page_shows_live_numbers_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shot = dir.path().join("services.png");
    let out = run_python(
        "browser/services_page.py",
        &[
            &server.url("/"),
            &server.otlp_url(""),
            shot.to_str().unwrap(),
        ],
    );
    assert!(out.contains("services page OK"), "{out}");
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot"
    );
}
