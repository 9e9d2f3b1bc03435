//! The `sentiment` plugin binary: serves [`sentiment::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(sentiment::plugin())
}
