//! Configuration errors: each one names the file, the line and column, and
//! what is wrong, formatted as `PATH:LINE:COL: message` like a compiler's.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in the config file, 1-based, as an editor shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, starting at 1.
    pub line: usize,
    /// The column in characters (not bytes), starting at 1.
    pub column: usize,
}

impl Position {
    /// Converts a byte offset into `source` to a line and column.
    ///
    /// An offset past the end (or inside a multi-byte character) is clamped to
    /// the nearest valid position, so a bad span from a parser never panics.
    pub fn from_offset(source: &str, offset: usize) -> Self {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

/// Where something is configured: the config file as the operator named it
/// and a line in it. Displayed as `PATH:LINE`, to prefix messages about it
/// that only come later (a plugin rejecting its `config` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The config file as the operator named it.
    pub path: PathBuf,
    /// The line, starting at 1.
    pub line: usize,
}

impl ConfigLocation {
    /// The location of a byte offset into `source`, read from `path`.
    pub fn at(path: &Path, source: &str, offset: usize) -> Self {
        ConfigLocation {
            path: path.to_path_buf(),
            line: Position::from_offset(source, offset).line,
        }
    }
}

impl fmt::Display for ConfigLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file as the operator named it.
    pub path: PathBuf,
    /// Where in the file, when the problem has a place (a file that cannot be
    /// read has none).
    pub position: Option<Position>,
    /// What is wrong, naming the key and the table.
    pub message: String,
}

impl ConfigError {
    /// An error at a byte span of `source`.
    pub fn at(path: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_path_buf(),
            position: Some(Position::from_offset(source, span.start)),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_path_buf(),
            position: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(Position { line, column }) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file (never empty). Loading reports all
/// of them at once so the operator can fix the file in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One `error: PATH:LINE:COL: message` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_offsets_to_lines_and_character_columns() {
        let source = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Position::from_offset(source, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::from_offset(source, 6),
            Position { line: 2, column: 1 }
        );
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(
            Position::from_offset(source, 12),
            Position { line: 2, column: 6 }
        );
        // Clamped, never a panic.
        assert_eq!(
            Position::from_offset(source, 999),
            Position { line: 3, column: 1 }
        );
        assert_eq!(
            Position::from_offset(source, 8),
            Position { line: 2, column: 2 }
        );
    }

    #[test]
    fn formats_like_a_compiler() {
        let error = ConfigError::at(Path::new("plugins.toml"), "x\ny", 2..3, "bad `y`");
        assert_eq!(error.to_string(), "plugins.toml:2:1: bad `y`");
        let errors = ConfigErrors(vec![error.clone(), error]);
        assert_eq!(
            errors.to_string(),
            "error: plugins.toml:2:1: bad `y`\nerror: plugins.toml:2:1: bad `y`"
        );
    }
}
