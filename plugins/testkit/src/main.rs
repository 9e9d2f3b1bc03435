//! The `testkit` plugin binary: serves [`testkit::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(testkit::plugin())
}
