//! The `formbricks` plugin binary: serves [`formbricks::plugin`].

fn main() {
    switchyard_plugin_sdk::serve(formbricks::plugin())
}
