//! No code: the dependencies of this crate (Cargo.toml) make every workspace member's build
//! use one feature set per dependency.
