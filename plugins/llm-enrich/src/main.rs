//! The `llm-enrich` plugin binary: serves [`llm_enrich::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(llm_enrich::plugin())
}
