//! The `webhook-json` plugin binary: serves [`webhook_json::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(webhook_json::plugin())
}
