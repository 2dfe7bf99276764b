//! The dashboard in a real headless Chromium: every page, the numbers it shows against what was
//! sent and what the API says, clicking from the overview down to one trace, a 10,000-span trace,
//! a narrow window and an empty server. Screenshots of each page are saved under
//! `<target>/tmp/screenshots/`.

mod common;

use common::{Server, run_python};

#[test]
fn the_dashboard_shows_the_fleet_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let empty_dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--flush-interval", "1s"]);
    let empty = Server::start(empty_dir.path(), &[]);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let out = run_python(
        "browser/dashboard.py",
        &[
            &server.url("/"),
            &server.otlp_url(""),
            &empty.url("/"),
            shots.to_str().unwrap(),
        ],
    );
    assert!(out.contains("dashboard OK"), "{out}");
    for page in [
        "overview",
        "service",
        "trace",
        "errors",
        "dependencies",
        "big-trace",
        "dashboard",
        "narrow",
        "empty",
    ] {
        let png = shots.join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&png)
                .map(|m| m.len() > 5_000)
                .unwrap_or(false),
            "no screenshot {}",
            png.display()
        );
    }
    println!("screenshots in {}", shots.display());
}
