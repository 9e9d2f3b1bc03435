//! The `jsonl-output` plugin binary: serves [`jsonl_output::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(jsonl_output::plugin())
}
