//! What each role's skeleton does, independent of the language: its one
//! config key, the extra `plugins.toml` tables that put it to work, and the
//! call that tries it through the hub's admin API.

use super::{Lang, Role};

/// The language-independent facts about one role's skeleton.
#[derive(Debug, Clone, Copy)]
pub struct RoleInfo {
    /// The role as written in the API and on the command line.
    pub slug: &'static str,
    /// One sentence: what the skeleton does.
    pub behaviour: &'static str,
    /// The config key, its meaning and default (Markdown).
    pub config_doc: &'static str,
    /// The `[plugins.NAME.config]` lines of the snippet.
    pub config_toml: &'static str,
    /// Tables after the plugin's own (with `{{name}}` placeholders).
    pub extra_toml: &'static str,
    /// The admin API call that exercises the role (`call/KIND`).
    pub call_kind: &'static str,
    /// The JSON body of that call (with `{{name}}` placeholders).
    pub call_body: &'static str,
    /// What the answer shows.
    pub call_expect: &'static str,
}

/// The facts about `role`'s skeleton in `lang`: the Rust and Python polling
/// inputs read a paginated HTTP API with their SDK's HTTP toolkit; every
/// other skeleton is the same in every language.
pub fn info_for(lang: Lang, role: Role) -> RoleInfo {
    match (lang, role) {
        (Lang::Python, Role::PollingInput) => PYTHON_POLLING_INPUT,
        (Lang::Rust, Role::PollingInput) => RUST_POLLING_INPUT,
        _ => info(role),
    }
}

/// The `[plugins.NAME.config]` lines of the HTTP polling inputs: the two
/// toolkits read the same keys.
const HTTP_POLLING_CONFIG_TOML: &str = "path = \"/items\"\nid_field = \"id\"\n\n\
    # The API to read: point base_url at yours (secrets go in environment variables, e.g.\n\
    # [plugins.{{name}}.config.api.auth] kind = \"bearer\", token_env = \"MY_API_TOKEN\").\n\
    [plugins.{{name}}.config.api]\nbase_url = \"http://127.0.0.1:8080/v1\"\ntimeout = \"30s\"\n\n\
    [plugins.{{name}}.config.api.retry]\nmax_attempts = 5\n\n\
    [plugins.{{name}}.config.api.pagination]\nkind = \"cursor\"\nrecords_path = \"/data\"\n\
    cursor_param = \"starting_after\"\ncursor_path = \"/next_cursor\"\nlimit_param = \"limit\"\npage_size = 100\n";

/// The `plugins.toml` tables after the HTTP polling inputs' own.
const HTTP_POLLING_EXTRA_TOML: &str = "\n# Poll once at start-up, then 30 s after each poll ends.\n\
    [plugins.{{name}}.poll]\ninterval = \"30s\"\n";

/// The Python polling input: an HTTP API read page by page.
const PYTHON_POLLING_INPUT: RoleInfo = RoleInfo {
    slug: "polling-input",
    behaviour: "an HTTP API reader: each poll lists `GET {api.base_url}{path}` page by page with \
                `switchyard_plugin.http` (cursor pagination, Stripe style), one record per item (id from \
                `id_field`), and checkpoints the next page's position, so an interrupted poll resumes at \
                that page and the next poll asks only for items after the last one",
    config_doc: "`path` (string, default `\"/items\"`): the list endpoint, relative to `api.base_url`.\n\
                 - `id_field` (string, default `\"id\"`): the item key holding the record id.\n\
                 - `api` (table, required): the HTTP client of `switchyard_plugin.http`: `base_url`, `timeout`, \
                 `[api.auth]`, `[api.retry]`, `[api.rate_limit]` and `[api.pagination]` (see \
                 docs/write-a-connector.md, \"Calling an API from Python\").",
    config_toml: HTTP_POLLING_CONFIG_TOML,
    extra_toml: HTTP_POLLING_EXTRA_TOML,
    call_kind: "poll",
    call_body: "{}",
    call_expect: "one batch per page of the API's list, each with a checkpoint like `{\"cursor\": \"<id>\"}` (base64)",
};

/// The Rust polling input: an HTTP API read page by page.
const RUST_POLLING_INPUT: RoleInfo = RoleInfo {
    slug: "polling-input",
    behaviour: "an HTTP API reader: each poll lists `GET {api.base_url}{path}` page by page with \
                the SDK's `switchyard_plugin_sdk::http` (cursor pagination, Stripe style), one record per \
                item (id from `id_field`), and checkpoints the next page's position, so an interrupted poll \
                resumes at that page and the next poll asks only for items after the last one",
    config_doc: "`path` (string, default `\"/items\"`): the list endpoint, relative to `api.base_url`.\n\
                 - `id_field` (string, default `\"id\"`): the item key holding the record id.\n\
                 - `api` (table, required): the SDK's `http::HttpConfig`: `base_url`, `timeout`, \
                 `[api.auth]`, `[api.retry]`, `[api.rate_limit]` and `[api.pagination]` (see \
                 docs/write-a-connector.md, \"Calling an API: the http toolkit\").",
    config_toml: HTTP_POLLING_CONFIG_TOML,
    extra_toml: HTTP_POLLING_EXTRA_TOML,
    call_kind: "poll",
    call_body: "{}",
    call_expect: "one batch per page of the API's list, each with a checkpoint like \
                  `{\"kind\": \"cursor\", \"cursor\": \"<id>\"}` (base64)",
};

/// The facts about `role`'s skeleton.
pub fn info(role: Role) -> RoleInfo {
    match role {
        Role::PollingInput => RoleInfo {
            slug: "polling-input",
            behaviour: "a counter source: each poll emits the next `batch_size` numbers as records \
                        (id `\"N\"`, payload `{\"number\": N}`), then a checkpoint (the last number), \
                        so the next poll resumes after it",
            config_doc: "`batch_size` (integer, 1 to 10000, default 10): how many records each poll emits.",
            config_toml: "batch_size = 10\n",
            extra_toml: "\n# Poll once at start-up, then 30 s after each poll ends.\n\
                         [plugins.{{name}}.poll]\ninterval = \"30s\"\n",
            call_kind: "poll",
            call_body: "{}",
            call_expect: "one batch of 10 records and the checkpoint `MTA=` (\"10\" in base64)",
        },
        Role::WebhookInput => RoleInfo {
            slug: "webhook-input",
            behaviour: "each delivery's body must be a JSON object with an id (under the key `id_field`); \
                        it becomes one record with that id, the object as payload and the delivery id in \
                        its metadata; any other body is refused with 400",
            config_doc: "`id_field` (string, default `\"id\"`): the key of the body's JSON object holding the record id.",
            config_toml: "id_field = \"id\"\n",
            extra_toml: "\n# Serve POST /webhooks/{{name}}. `auth = \"none\"` accepts anyone: before exposing the hub,\n\
                         # use auth = \"api_key\" (or \"github\", \"stripe\", \"standard_webhooks\") with secret_env.\n\
                         [plugins.{{name}}.webhook]\nauth = \"none\"\n",
            call_kind: "webhook",
            call_body: "{\"body\": \"{\\\"id\\\": \\\"42\\\", \\\"hello\\\": \\\"world\\\"}\"}",
            call_expect: "one record with id `42`",
        },
        Role::Enrichment => RoleInfo {
            slug: "enrichment",
            behaviour: "counts the words of one text field of each record's payload and writes the count \
                        to the record's metadata as `word_count`; a payload that is not a JSON object \
                        fails the record permanently",
            config_doc: "`field` (string, default `\"text\"`): the payload field whose words are counted.",
            config_toml: "field = \"text\"\n",
            extra_toml: "\n# Every record the hub stores passes through this enricher. If your plugins.toml\n\
                         # already has a [pipeline] table, add \"{{name}}\" to its `enrich` list instead.\n\
                         [pipeline]\nenrich = [\"{{name}}\"]\n",
            call_kind: "enrich",
            call_body: "{\"records\": [{\"id\": \"1\", \"payload\": {\"text\": \"hello switchyard world\"}}]}",
            call_expect: "the record with `\"metadata\": {\"word_count\": \"3\"}`",
        },
        Role::Output => RoleInfo {
            slug: "output",
            behaviour: "appends every record event as one JSON line to a file and acknowledges it only \
                        once the line is on disk (fsync)",
            config_doc: "`path` (string, required): the file events are appended to, created if missing; \
                         relative to the directory of plugins.toml.",
            config_toml: "path = \"{{name}}-events.jsonl\"\n",
            extra_toml: "\n# Deliver every created or updated record to this output.\n\
                         [plugins.{{name}}.output]\nevents = [\"created\", \"updated\"]\n",
            call_kind: "events",
            call_body: "{\"events\": [{\"kind\": \"created\", \"record\": {\"id\": \"1\", \"payload\": {\"hello\": \"world\"}}}]}",
            call_expect: "`{\"acks\": [{\"delivery_id\": 1, \"ok\": true}]}`, and the event's line in `{{name}}-events.jsonl`",
        },
    }
}
