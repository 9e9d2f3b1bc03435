//! The `nats-output` plugin binary: serves [`nats_output::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(nats_output::plugin())
}
