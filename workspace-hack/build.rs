// Cargo considers build-dependencies only for a package with a build script: this one makes
// the [build-dependencies] of Cargo.toml (the build scripts' and proc-macros' features) count.
fn main() {}
