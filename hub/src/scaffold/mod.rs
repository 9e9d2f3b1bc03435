//! `switchyard new`: writes a working plugin skeleton (code, a test, a README
//! and a `plugins.toml`) for one role in Rust, Python or Go.
//!
//! The skeletons live in `templates/` and are embedded in the binary. A
//! project is first planned in memory ([`plan`], pure and unit-tested: every
//! template of every language and role renders), then written by
//! [`generate`], which refuses to touch an existing directory and removes
//! what it wrote if it fails half-way.
//!
//! The generated projects depend on parts of a Switchyard checkout that are not
//! published anywhere: the Rust SDK (`plugin-sdk/`), the Python helper
//! package (`plugins/python/`) and the Go SDK module (`sdk/go/`). Their
//! default locations are those of the checkout this binary was built from
//! ([`Paths::default`]); each can be overridden on the command line.
//!
//! ```no_run
//! use switchyard_hub::scaffold::{Lang, Options, Paths, Role, generate};
//!
//! let options = Options {
//!     name: "word-counter".into(),
//!     role: Role::Enrichment,
//!     lang: Lang::Rust,
//!     dir: None,
//!     paths: Paths::default(),
//! };
//! let project = generate(&options).expect("generated");
//! println!("{}", project.next_steps);
//! ```

mod name;
mod project;
mod render;
mod roles;
mod write;

use std::path::{Path, PathBuf};

pub use name::validate as validate_name;
pub use project::{ProjectFile, plan};
pub use render::RenderError;

/// The language of a generated plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the Switchyard Rust SDK.
    Rust,
    /// Python, with the `switchyard_plugin` helper package.
    Python,
    /// Go, with hashicorp/go-plugin's `plugin.Serve`.
    Go,
}

/// The role a generated plugin serves: the shared [`crate::domain::Role`].
pub use crate::domain::Role;

impl Lang {
    /// Every language.
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Go];

    /// The language as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Go => "go",
        }
    }
}

/// Where the parts of the Switchyard checkout a project depends on are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The Rust SDK crate (`plugin-sdk/`).
    pub rust_sdk: PathBuf,
    /// The Python helper package's directory (`plugins/python/`, with its `.venv`).
    pub python_sdk: PathBuf,
    /// The Go SDK module (`sdk/go/`, holding the switchyard.v1 stubs too).
    pub go_sdk: PathBuf,
}

impl Default for Paths {
    /// The locations in the checkout this binary was built from.
    fn default() -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Paths {
            rust_sdk: repo.join("plugin-sdk"),
            python_sdk: repo.join("plugins").join("python"),
            go_sdk: repo.join("sdk").join("go"),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin's name: also its directory, binary and instance name.
    pub name: String,
    /// The role it serves.
    pub role: Role,
    /// The language it is written in.
    pub lang: Lang,
    /// The directory to create; `./NAME` when `None`. It must not exist.
    pub dir: Option<PathBuf>,
    /// Where the SDKs are.
    pub paths: Paths,
}

/// A project that was written.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The project's directory.
    pub dir: PathBuf,
    /// The files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// What to do next, as text for the terminal.
    pub next_steps: String,
    /// Problems that do not stop generation but will stop the build (for
    /// example the Python virtualenv or the Go stubs not built yet).
    pub warnings: Vec<String>,
}

/// Why a project could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a valid plugin name.
    #[error("{0}")]
    InvalidName(String),
    /// The target directory already exists.
    #[error("{} already exists: choose another name or --dir (nothing was written)", .0.display())]
    Exists(PathBuf),
    /// An SDK the project depends on was not found.
    #[error("the {what} was not found at {}: pass {flag} with its location", path.display())]
    MissingSdk {
        /// Which SDK.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The command-line flag that overrides it.
        flag: &'static str,
    },
    /// A path cannot be written into the generated files safely.
    #[error("the path {} contains a character that cannot go in generated files (quote, backslash, `$`, backtick or a control character)", .0.display())]
    UnsafePath(PathBuf),
    /// A template is broken (a bug in Switchyard).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Reading an SDK file or writing the project failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Generates the project described by `options` and says what to do next.
///
/// # Errors
/// An invalid name, an existing directory, an SDK that cannot be found, or a
/// write failure (then nothing is left behind).
pub fn generate(options: &Options) -> Result<Generated, ScaffoldError> {
    validate_name(&options.name).map_err(ScaffoldError::InvalidName)?;
    let dir = options
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&options.name));
    if dir.exists() || dir.is_symlink() {
        return Err(ScaffoldError::Exists(dir));
    }
    let inputs = project::Inputs::read(options)?;
    let files = plan(options, &inputs)?;
    write::write_project(&dir, &files)?;
    Ok(Generated {
        next_steps: project::next_steps(options, &dir, &inputs),
        files: files.iter().map(|file| file.path.clone()).collect(),
        dir,
        warnings: inputs.warnings,
    })
}
