// The dashboard's files are embedded into the binary: rebuild when any of them changes.
fn main() {
    println!("cargo:rerun-if-changed=assets");
}
