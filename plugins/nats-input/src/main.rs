//! The `nats-input` plugin binary: serves [`nats_input::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(nats_input::plugin())
}
