// The built-in dashboards are embedded into the binary: rebuild when any of them changes.
fn main() {
    println!("cargo:rerun-if-changed=../dashboards");
}
