//! The `rest-poll` plugin binary: serves [`rest_poll::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(rest_poll::plugin())
}
