//! `switchyard`: the hub binary.
fn main() {}
