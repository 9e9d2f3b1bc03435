//! Planning a project: which files a language and role get, rendered from the
//! embedded templates, and the next steps printed after writing them.

use std::path::{Path, PathBuf};

use super::name::{camel_case, snake_case};
use super::render::{Vars, render};
use super::roles::{self, RoleInfo};
use super::{Lang, Options, Role, ScaffoldError};

/// One file of a generated project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    /// The path relative to the project's directory.
    pub path: PathBuf,
    /// The file's contents.
    pub contents: String,
    /// Whether it is written with mode 0755 (launcher scripts).
    pub executable: bool,
}

/// What a project needs from the SDKs' locations, read before planning.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The Rust SDK's absolute path (Rust projects).
    pub rust_sdk: String,
    /// The Cargo.lock of the SDK's workspace, copied so the project builds
    /// with the dependency versions the SDK is tested with (Rust projects).
    pub cargo_lock: Option<String>,
    /// The Python helper package's absolute directory (Python projects).
    pub python_sdk: String,
    /// The Go SDK module's absolute directory (Go projects).
    pub go_sdk_dir: String,
    /// Its module path, from its go.mod (Go projects).
    pub go_sdk_module: String,
    /// Its go.mod without the `module` line: the `go` directive and the
    /// requirements the generated module shares (Go projects).
    pub go_mod_rest: String,
    /// Its go.sum (Go projects).
    pub go_sum: String,
    /// Problems that will stop the build until fixed.
    pub warnings: Vec<String>,
}

const README: &str = include_str!("templates/common/README.md.tmpl");
const PLUGINS_TOML: &str = include_str!("templates/common/plugins.toml.tmpl");

mod rust {
    pub const CARGO_TOML: &str = include_str!("templates/rust/Cargo.toml.tmpl");
    pub const MAIN: &str = include_str!("templates/rust/main.rs.tmpl");
    pub const GITIGNORE: &str = include_str!("templates/rust/gitignore.tmpl");
    pub const LIB: [&str; 4] = [
        include_str!("templates/rust/lib_polling-input.rs.tmpl"),
        include_str!("templates/rust/lib_webhook-input.rs.tmpl"),
        include_str!("templates/rust/lib_enrichment.rs.tmpl"),
        include_str!("templates/rust/lib_output.rs.tmpl"),
    ];
    pub const TEST: [&str; 4] = [
        include_str!("templates/rust/test_polling-input.rs.tmpl"),
        include_str!("templates/rust/test_webhook-input.rs.tmpl"),
        include_str!("templates/rust/test_enrichment.rs.tmpl"),
        include_str!("templates/rust/test_output.rs.tmpl"),
    ];
}

mod python {
    pub const LAUNCHER: &str = include_str!("templates/python/launcher.sh.tmpl");
    pub const PYTEST_INI: &str = include_str!("templates/python/pytest.ini.tmpl");
    pub const GITIGNORE: &str = include_str!("templates/python/gitignore.tmpl");
    pub const REQUIREMENTS: &str = include_str!("templates/python/requirements.txt.tmpl");
    pub const PLUGIN: [&str; 4] = [
        include_str!("templates/python/plugin_polling-input.py.tmpl"),
        include_str!("templates/python/plugin_webhook-input.py.tmpl"),
        include_str!("templates/python/plugin_enrichment.py.tmpl"),
        include_str!("templates/python/plugin_output.py.tmpl"),
    ];
    pub const TEST: [&str; 4] = [
        include_str!("templates/python/test_polling-input.py.tmpl"),
        include_str!("templates/python/test_webhook-input.py.tmpl"),
        include_str!("templates/python/test_enrichment.py.tmpl"),
        include_str!("templates/python/test_output.py.tmpl"),
    ];
}

mod go {
    pub const GO_MOD: &str = include_str!("templates/go/go.mod.tmpl");
    pub const MAIN: &str = include_str!("templates/go/main.go.tmpl");
    pub const GITIGNORE: &str = include_str!("templates/go/gitignore.tmpl");
    pub const PLUGIN: [&str; 4] = [
        include_str!("templates/go/plugin_polling-input.go.tmpl"),
        include_str!("templates/go/plugin_webhook-input.go.tmpl"),
        include_str!("templates/go/plugin_enrichment.go.tmpl"),
        include_str!("templates/go/plugin_output.go.tmpl"),
    ];
    pub const TEST: [&str; 4] = [
        include_str!("templates/go/plugin_test_polling-input.go.tmpl"),
        include_str!("templates/go/plugin_test_webhook-input.go.tmpl"),
        include_str!("templates/go/plugin_test_enrichment.go.tmpl"),
        include_str!("templates/go/plugin_test_output.go.tmpl"),
    ];
}

/// The index of a role in the per-role template arrays.
fn role_index(role: Role) -> usize {
    match role {
        Role::PollingInput => 0,
        Role::WebhookInput => 1,
        Role::Enrichment => 2,
        Role::Output => 3,
    }
}

/// Characters that must not appear in a path written into a TOML string, a
/// shell script or go.mod.
fn is_unsafe_in_files(c: char) -> bool {
    matches!(c, '"' | '\\' | '$' | '`' | '\'') || c.is_control()
}

/// The absolute form of `path` as text, refusing one that cannot be written safely.
fn path_text(path: &Path) -> Result<String, ScaffoldError> {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match absolute.to_str() {
        Some(text) if !text.chars().any(is_unsafe_in_files) => Ok(text.to_owned()),
        _ => Err(ScaffoldError::UnsafePath(absolute)),
    }
}

fn read(path: &Path, action: &'static str) -> Result<String, ScaffoldError> {
    std::fs::read_to_string(path).map_err(|source| ScaffoldError::Io {
        action,
        path: path.to_path_buf(),
        source,
    })
}

fn require_dir(
    path: &Path,
    marker: &str,
    what: &'static str,
    flag: &'static str,
) -> Result<(), ScaffoldError> {
    if path.join(marker).is_file() {
        Ok(())
    } else {
        Err(ScaffoldError::MissingSdk {
            what,
            path: path.to_path_buf(),
            flag,
        })
    }
}

impl Inputs {
    /// Finds and reads what `options.lang` needs from the SDK locations.
    ///
    /// # Errors
    /// When the SDK for the language is missing or unreadable.
    pub fn read(options: &Options) -> Result<Inputs, ScaffoldError> {
        let paths = &options.paths;
        let mut inputs = Inputs::default();
        match options.lang {
            Lang::Rust => {
                require_dir(
                    &paths.rust_sdk,
                    "Cargo.toml",
                    "Switchyard Rust SDK (plugin-sdk)",
                    "--sdk-path",
                )?;
                inputs.rust_sdk = path_text(&paths.rust_sdk)?;
                let lock = paths.rust_sdk.join("..").join("Cargo.lock");
                inputs.cargo_lock = std::fs::read_to_string(lock).ok();
            }
            Lang::Python => {
                require_dir(
                    &paths.python_sdk,
                    "switchyard_plugin/__init__.py",
                    "Switchyard Python helper package (plugins/python)",
                    "--python-sdk-path",
                )?;
                inputs.python_sdk = path_text(&paths.python_sdk)?;
                if !paths.python_sdk.join("switchyard_plugin/_gen").is_dir() {
                    inputs.warnings.push(format!(
                        "the Python SDK's gRPC stubs ({}/switchyard_plugin/_gen) are not generated yet: run {}/build.sh \
                         before installing requirements.txt",
                        inputs.python_sdk, inputs.python_sdk
                    ));
                }
            }
            Lang::Go => {
                require_dir(
                    &paths.go_sdk,
                    "switchyardv1/plugin.pb.go",
                    "Switchyard Go SDK (sdk/go)",
                    "--go-sdk-path",
                )?;
                inputs.go_sdk_dir = path_text(&paths.go_sdk)?;
                let go_mod = read(&paths.go_sdk.join("go.mod"), "cannot read")?;
                let (module_path, rest) =
                    split_go_mod(&go_mod).ok_or_else(|| ScaffoldError::Io {
                        action: "found no `module` line in",
                        path: paths.go_sdk.join("go.mod"),
                        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
                    })?;
                inputs.go_sdk_module = module_path;
                inputs.go_mod_rest = rest;
                inputs.go_sum = read(&paths.go_sdk.join("go.sum"), "cannot read")?;
            }
        }
        Ok(inputs)
    }
}

/// Splits a go.mod into its module path and everything else.
fn split_go_mod(go_mod: &str) -> Option<(String, String)> {
    let mut module = None;
    let mut rest = String::new();
    for line in go_mod.lines() {
        match line.trim().strip_prefix("module ") {
            Some(path) if module.is_none() => {
                module = Some(path.trim().trim_matches('"').to_owned())
            }
            _ => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    Some((module?, rest.trim().to_owned() + "\n"))
}

/// The field of the Go SDK's `switchyard.Plugin` that holds a role.
fn go_role_field(role: Role) -> &'static str {
    match role {
        Role::PollingInput => "PollingInput",
        Role::WebhookInput => "WebhookInput",
        Role::Enrichment => "Enricher",
        Role::Output => "Output",
    }
}

/// The placeholders every template may use.
fn base_vars(options: &Options, inputs: &Inputs) -> Result<Vars, ScaffoldError> {
    let info = roles::info_for(options.lang, options.role);
    let mut vars = Vars::from([
        ("name", options.name.clone()),
        ("crate_name", snake_case(&options.name)),
        ("module_name", snake_case(&options.name)),
        ("type_name", camel_case(&options.name)),
        ("role", info.slug.to_owned()),
        ("sdk_path", inputs.rust_sdk.clone()),
        ("python_sdk_path", inputs.python_sdk.clone()),
        ("go_sdk_dir", inputs.go_sdk_dir.clone()),
        ("go_sdk_module", inputs.go_sdk_module.clone()),
        ("go_mod_rest", inputs.go_mod_rest.clone()),
        ("go_role_field", go_role_field(options.role).to_owned()),
    ]);
    // Role texts may themselves name the plugin.
    let role_text = |key: &str, text: &str| render(key, text, &vars);
    let rendered = [
        ("behaviour", role_text("behaviour", info.behaviour)?),
        ("config_doc", role_text("config_doc", info.config_doc)?),
        ("config_toml", role_text("config_toml", info.config_toml)?),
        ("extra_toml", role_text("extra_toml", info.extra_toml)?),
        ("call_kind", info.call_kind.to_owned()),
        ("call_body", info.call_body.to_owned()),
        ("call_expect", role_text("call_expect", info.call_expect)?),
    ];
    vars.extend(rendered);
    Ok(vars)
}

/// Creates a Python project's virtualenv with the SDK package and pytest.
const PYTHON_VENV: &str = "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt";

/// The language-specific parts of the README and plugins.toml.
struct LangText {
    title: &'static str,
    command: String,
    layout: String,
    prepare: String,
    build: String,
    test: String,
    edit_hint: String,
}

fn lang_text(options: &Options, inputs: &Inputs) -> LangText {
    let name = &options.name;
    let module = snake_case(name);
    match options.lang {
        Lang::Rust => LangText {
            title: "Rust",
            command: format!("target/debug/{name}"),
            layout: "- `src/lib.rs`: the configuration struct, the role implementation and `plugin()`.\n\
                     - `src/main.rs`: the binary, which calls `serve(plugin())`.\n\
                     - `tests/plugin.rs`: tests through the SDK's in-process `TestHarness`."
                .to_owned(),
            prepare: format!(
                "The crate uses the Switchyard Rust SDK from `{}` (a path dependency; edit `Cargo.toml` if it moves).\n\n",
                inputs.rust_sdk
            ),
            build: "cargo build".to_owned(),
            test: "cargo test".to_owned(),
            edit_hint: "Edit `src/lib.rs`: the config struct (its doc comments become the JSON Schema the hub shows) \
                        and the role method. `cargo build --release` and `command = \"target/release/NAME\"` for production."
                .replace("NAME", name),
        },
        Lang::Python => LangText {
            title: "Python",
            command: name.clone(),
            layout: format!(
                "- `{module}.py`: the plugin class and `serve()`.\n\
                 - `{name}`: the launcher the hub runs (a `/bin/sh` script that starts `{module}.py` with the project's `.venv`;\n  \
                 set `SWITCHYARD_PYTHON` in the plugin's `env` to use another interpreter).\n\
                 - `requirements.txt`: the `switchyard-plugin` package (from the Switchyard checkout) and pytest.\n\
                 - `test_{module}.py`, `pytest.ini`: pytest tests of the class, in-process."
            ),
            prepare: format!(
                "The plugin uses the `switchyard-plugin` package, which `requirements.txt` installs into the \
                 project's own `.venv` from `{sdk}`; generate the package's gRPC stubs there once:\n\n\
                 ```sh\n{sdk}/build.sh\n```\n\n",
                sdk = inputs.python_sdk,
            ),
            build: PYTHON_VENV.to_owned(),
            test: ".venv/bin/python -m pytest".to_owned(),
            edit_hint: format!(
                "Edit `{module}.py`: `config_schema`, `configure` (return every problem as a `ConfigError`) and the role method."
            ),
        },
        Lang::Go => LangText {
            title: "Go",
            command: format!("bin/{name}"),
            layout: format!(
                "- `main.go`: the plugin's metadata and `switchyard.Serve` (the Switchyard Go SDK).\n\
                 - `plugin.go`: the configuration, `Configure` and the role method of `Connector`.\n\
                 - `plugin_test.go`: tests through the SDK over a real gRPC connection (bufconn).\n\
                 - `go.mod`: uses the Go SDK from `{}` through a `replace` directive.",
                inputs.go_sdk_dir
            ),
            prepare: format!(
                "The plugin uses the Switchyard Go SDK (`{module}`) from `{dir}` through a `replace` \
                 directive in `go.mod`, until the SDK is published; then drop the `replace` and run \
                 `go get {module}@latest`.\n\n",
                module = inputs.go_sdk_module,
                dir = inputs.go_sdk_dir
            ),
            build: "go build -o bin/ .".to_owned(),
            test: "go test ./...".to_owned(),
            edit_hint: "Edit `plugin.go`: `Config` and `parseConfig`, the config schema, and the role method \
                        (return `switchyard.Permanent` or `switchyard.Retryable` errors)."
                .to_owned(),
        },
    }
}

/// Renders every file of the project described by `options`.
///
/// # Errors
/// When a template is broken (a bug caught by this module's tests).
pub fn plan(options: &Options, inputs: &Inputs) -> Result<Vec<ProjectFile>, ScaffoldError> {
    let mut vars = base_vars(options, inputs)?;
    let text = lang_text(options, inputs);
    vars.extend([
        ("lang_title", text.title.to_owned()),
        ("command", text.command.clone()),
        ("layout", text.layout.clone()),
        ("prepare", text.prepare.clone()),
        ("build", text.build.clone()),
        ("test", text.test.clone()),
        ("edit_hint", text.edit_hint.clone()),
    ]);
    let index = role_index(options.role);
    let module = snake_case(&options.name);
    let file =
        |path: &str, template: &str, executable: bool| -> Result<ProjectFile, ScaffoldError> {
            Ok(ProjectFile {
                path: PathBuf::from(path),
                contents: render(path, template, &vars)?,
                executable,
            })
        };
    let mut files = vec![
        file("README.md", README, false)?,
        file("plugins.toml", PLUGINS_TOML, false)?,
    ];
    match options.lang {
        Lang::Rust => {
            files.push(file("Cargo.toml", rust::CARGO_TOML, false)?);
            files.push(file("src/main.rs", rust::MAIN, false)?);
            files.push(file("src/lib.rs", rust::LIB[index], false)?);
            files.push(file("tests/plugin.rs", rust::TEST[index], false)?);
            files.push(file(".gitignore", rust::GITIGNORE, false)?);
            if let Some(lock) = &inputs.cargo_lock {
                files.push(ProjectFile {
                    path: PathBuf::from("Cargo.lock"),
                    contents: lock.clone(),
                    executable: false,
                });
            }
        }
        Lang::Python => {
            files.push(file(&options.name, python::LAUNCHER, true)?);
            files.push(file(&format!("{module}.py"), python::PLUGIN[index], false)?);
            files.push(file(
                &format!("test_{module}.py"),
                python::TEST[index],
                false,
            )?);
            files.push(file("requirements.txt", python::REQUIREMENTS, false)?);
            files.push(file("pytest.ini", python::PYTEST_INI, false)?);
            files.push(file(".gitignore", python::GITIGNORE, false)?);
        }
        Lang::Go => {
            files.push(file("go.mod", go::GO_MOD, false)?);
            files.push(ProjectFile {
                path: PathBuf::from("go.sum"),
                contents: inputs.go_sum.clone(),
                executable: false,
            });
            files.push(file("main.go", go::MAIN, false)?);
            files.push(file("plugin.go", go::PLUGIN[index], false)?);
            files.push(file("plugin_test.go", go::TEST[index], false)?);
            files.push(file(".gitignore", go::GITIGNORE, false)?);
        }
    }
    Ok(files)
}

/// The next steps printed after the project is written into `dir`.
pub fn next_steps(options: &Options, dir: &Path, inputs: &Inputs) -> String {
    let text = lang_text(options, inputs);
    let info: RoleInfo = roles::info_for(options.lang, options.role);
    let mut steps = format!(
        "Created the {lang} {role} plugin `{name}` in {dir}.\n\nNext steps:\n  cd {dir}\n",
        lang = text.title,
        role = info.slug,
        name = options.name,
        dir = dir.display(),
    );
    match options.lang {
        Lang::Rust | Lang::Go => {}
        Lang::Python => steps.push_str(&format!(
            "  {}/build.sh        # once: the SDK's gRPC stubs\n",
            inputs.python_sdk
        )),
    }
    steps.push_str(&format!("  {}\n", text.build));
    steps.push_str(&format!(
        "  {test}\n  switchyard run --config plugins.toml\n\nThen call it: curl -s -XPOST localhost:7300/api/v1/plugins/{name}/call/{kind} -H 'content-type: application/json' -d '{body}'\nSee README.md in the project for more.",
        test = text.test,
        name = options.name,
        kind = info.call_kind,
        body = info.call_body,
    ));
    steps
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scaffold::Paths;

    fn inputs() -> Inputs {
        Inputs {
            rust_sdk: "/repo/plugin-sdk".into(),
            cargo_lock: Some("# lock\n".into()),
            python_sdk: "/repo/plugins/python".into(),
            go_sdk_dir: "/repo/sdk/go".into(),
            go_sdk_module: "github.com/switchyard/switchyard/sdk/go".into(),
            go_mod_rest: "go 1.26.0\n\nrequire github.com/hashicorp/go-plugin v1.8.0\n".into(),
            go_sum: "sum\n".into(),
            warnings: Vec::new(),
        }
    }

    fn options(lang: Lang, role: Role) -> Options {
        Options {
            name: "word-counter".into(),
            role,
            lang,
            dir: None,
            paths: Paths::default(),
        }
    }

    fn contents<'a>(files: &'a [ProjectFile], path: &str) -> &'a str {
        &files
            .iter()
            .find(|file| file.path == Path::new(path))
            .unwrap_or_else(|| {
                panic!(
                    "no {path} in {:?}",
                    files.iter().map(|f| &f.path).collect::<Vec<_>>()
                )
            })
            .contents
    }

    #[test]
    fn every_language_and_role_renders_without_leftover_placeholders() {
        for lang in Lang::ALL {
            for role in Role::ALL {
                let files = plan(&options(lang, role), &inputs()).unwrap();
                for file in &files {
                    let leftover = file.contents.find("{{").and_then(|start| {
                        let key = &file.contents[start + 2..];
                        let end = key.find("}}")?;
                        key[..end]
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_')
                            .then_some(&key[..end])
                    });
                    assert_eq!(leftover, None, "{lang:?} {role:?} {}", file.path.display());
                }
                let toml_text = contents(&files, "plugins.toml");
                let parsed: toml::Table = toml::from_str(toml_text).unwrap_or_else(|err| {
                    panic!("{lang:?} {role:?} plugins.toml: {err}\n{toml_text}")
                });
                assert!(parsed["plugins"]["word-counter"]["command"].is_str());
                assert!(contents(&files, "README.md").contains(role.as_str()));
            }
        }
    }

    #[test]
    fn rust_projects_depend_on_the_sdk_by_path_in_their_own_workspace() {
        let files = plan(&options(Lang::Rust, Role::Enrichment), &inputs()).unwrap();
        let cargo: toml::Table = toml::from_str(contents(&files, "Cargo.toml")).unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some("word-counter"));
        assert!(cargo["workspace"].as_table().unwrap().is_empty());
        assert_eq!(
            cargo["dependencies"]["switchyard-plugin-sdk"]["path"].as_str(),
            Some("/repo/plugin-sdk")
        );
        assert!(contents(&files, "src/main.rs").contains("word_counter::plugin()"));
        assert!(contents(&files, "src/lib.rs").contains(".enricher(WordCounter::new)"));
        assert!(contents(&files, "tests/plugin.rs").contains("use word_counter::plugin;"));
        assert_eq!(contents(&files, "Cargo.lock"), "# lock\n");
        let toml_text: toml::Table = toml::from_str(contents(&files, "plugins.toml")).unwrap();
        assert_eq!(
            toml_text["plugins"]["word-counter"]["command"].as_str(),
            Some("target/debug/word-counter")
        );
        assert_eq!(
            toml_text["plugins"]["word-counter"]["config"]["field"].as_str(),
            Some("text")
        );
        assert_eq!(
            toml_text["pipeline"]["enrich"][0].as_str(),
            Some("word-counter")
        );
    }

    #[test]
    fn python_projects_install_the_sdk_package_into_their_own_venv() {
        let files = plan(&options(Lang::Python, Role::Output), &inputs()).unwrap();
        let launcher = files
            .iter()
            .find(|file| file.path == Path::new("word-counter"))
            .unwrap();
        assert!(launcher.executable);
        assert!(launcher.contents.starts_with("#!/bin/sh\n"));
        assert!(launcher.contents.contains("$here/.venv/bin/python"));
        assert!(
            contents(&files, "requirements.txt")
                .contains("\nswitchyard-plugin @ file:///repo/plugins/python\n")
        );
        assert!(contents(&files, "README.md").contains(PYTHON_VENV));
        assert!(launcher.contents.contains("word_counter.py"));
        assert!(contents(&files, "word_counter.py").contains("class WordCounter(Output)"));
        assert!(
            contents(&files, "test_word_counter.py")
                .contains("from word_counter import WordCounter")
        );
        let toml_text: toml::Table = toml::from_str(contents(&files, "plugins.toml")).unwrap();
        assert_eq!(
            toml_text["plugins"]["word-counter"]["config"]["path"].as_str(),
            Some("word-counter-events.jsonl")
        );
    }

    #[test]
    fn the_rust_and_python_polling_inputs_read_an_api_configured_in_plugins_toml() {
        for (lang, file, import) in [
            (
                Lang::Python,
                "word_counter.py",
                "from switchyard_plugin.http import HttpClient",
            ),
            (
                Lang::Rust,
                "src/lib.rs",
                "use switchyard_plugin_sdk::http::{Client, HttpConfig",
            ),
        ] {
            let files = plan(&options(lang, Role::PollingInput), &inputs()).unwrap();
            assert!(contents(&files, file).contains(import), "{lang:?}");
            let toml_text: toml::Table = toml::from_str(contents(&files, "plugins.toml")).unwrap();
            let config = &toml_text["plugins"]["word-counter"]["config"];
            assert_eq!(config["path"].as_str(), Some("/items"));
            assert!(
                config["api"]["base_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("http://127.0.0.1:")
            );
            assert_eq!(config["api"]["pagination"]["kind"].as_str(), Some("cursor"));
            assert_eq!(
                toml_text["plugins"]["word-counter"]["poll"]["interval"].as_str(),
                Some("30s")
            );
        }
        // The other languages keep the counter source.
        let files = plan(&options(Lang::Go, Role::PollingInput), &inputs()).unwrap();
        let toml_text: toml::Table = toml::from_str(contents(&files, "plugins.toml")).unwrap();
        assert_eq!(
            toml_text["plugins"]["word-counter"]["config"]["batch_size"].as_integer(),
            Some(10)
        );
    }

    #[test]
    fn go_projects_use_the_sdk_from_the_checkout() {
        let files = plan(&options(Lang::Go, Role::PollingInput), &inputs()).unwrap();
        let go_mod = contents(&files, "go.mod");
        assert!(go_mod.starts_with("// "), "{go_mod}");
        assert!(
            go_mod.contains("\nmodule example.com/word-counter\n"),
            "{go_mod}"
        );
        assert!(
            go_mod.contains("require github.com/hashicorp/go-plugin v1.8.0"),
            "{go_mod}"
        );
        assert!(
            go_mod.contains(
                "require github.com/switchyard/switchyard/sdk/go v0.0.0\n\n\
                 replace github.com/switchyard/switchyard/sdk/go => /repo/sdk/go"
            ),
            "{go_mod}"
        );
        assert_eq!(contents(&files, "go.sum"), "sum\n");
        let main = contents(&files, "main.go");
        assert!(main.contains("switchyard.Serve(newPlugin())"), "{main}");
        assert!(main.contains("\t\tPollingInput: connector,\n"), "{main}");
        let plugin = contents(&files, "plugin.go");
        assert!(
            plugin.contains("pb \"github.com/switchyard/switchyard/sdk/go/switchyardv1\""),
            "{plugin}"
        );
        let toml_text: toml::Table = toml::from_str(contents(&files, "plugins.toml")).unwrap();
        assert_eq!(
            toml_text["plugins"]["word-counter"]["poll"]["interval"].as_str(),
            Some("30s")
        );
    }

    #[test]
    fn go_mod_is_split_into_module_and_the_rest() {
        let (module, rest) = split_go_mod("module example.com/x\n\ngo 1.26.0\n").unwrap();
        assert_eq!(module, "example.com/x");
        assert_eq!(rest, "go 1.26.0\n");
        assert_eq!(split_go_mod("go 1.26.0\n"), None);
    }

    #[test]
    fn next_steps_name_the_directory_and_the_commands() {
        let steps = next_steps(
            &options(Lang::Go, Role::Output),
            Path::new("/tmp/wc"),
            &inputs(),
        );
        assert!(steps.contains("cd /tmp/wc"), "{steps}");
        assert!(!steps.contains("build.sh"), "{steps}");
        assert!(steps.contains("go build -o bin/ ."), "{steps}");
        assert!(steps.contains("call/events"), "{steps}");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(matches!(
            path_text(Path::new("/tmp/it's")),
            Err(ScaffoldError::UnsafePath(_))
        ));
        assert_eq!(
            path_text(Path::new("/nonexistent/a b")).unwrap(),
            "/nonexistent/a b"
        );
    }
}
