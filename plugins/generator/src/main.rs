//! The `generator` plugin binary: serves [`generator::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(generator::plugin())
}
