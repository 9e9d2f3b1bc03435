//! The `http-output` plugin binary: serves [`http_output::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(http_output::plugin())
}
