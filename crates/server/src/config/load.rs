//! Loading: reading the file, telling YAML from JSON, and parsing it into the schema with
//! errors that name the file, line, column and field path (`serde_path_to_error`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::{validate, Config, Location};

/// A configuration that cannot be used: where and why. Displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or a description of the source (`command line`).
    pub origin: String,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// The field's path, e.g. `listeners[1].address`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration {}", self.origin)?;
        if let Some(l) = self.location {
            write!(f, " at line {}, column {}", l.line, l.column)?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error with no location (e.g. the file cannot be read).
    pub fn plain(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            location: None,
            field: None,
            message: message.into(),
        }
    }
}

/// The syntax of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (the default).
    Yaml,
    /// JSON.
    Json,
}

/// JSON by extension (`.json`), YAML by extension (`.yaml`, `.yml`), else JSON when the first
/// non-blank byte is `{`, else YAML.
pub fn detect_format(path: &Path, bytes: &[u8]) -> Format {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Json,
            _ => Format::Yaml,
        },
    }
}

/// A parsed and validated configuration file, with the text it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// The file.
    pub path: PathBuf,
    /// Its syntax.
    pub format: Format,
    /// Its bytes (to locate fields in later messages).
    pub bytes: Vec<u8>,
}

/// Reads, parses and validates a configuration file.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::plain(&origin, format!("cannot read the file: {e}")))?;
    let format = detect_format(path, &bytes);
    let config = parse(&bytes, format, &origin)?;
    let base = path.parent().unwrap_or(Path::new("."));
    validate(&config, Some(base)).map_err(|e| e.locate(&bytes, format, &origin))?;
    Ok(LoadedConfig {
        config,
        path: path.to_owned(),
        format,
        bytes,
    })
}

/// Parses configuration text (no validation beyond the schema). An empty YAML document is
/// the defaults.
pub fn parse(bytes: &[u8], format: Format, origin: &str) -> Result<Config, ConfigError> {
    match format {
        Format::Yaml => {
            let de = yaml_serde::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, Option<Config>>(de) {
                Ok(c) => Ok(c.unwrap_or_default()),
                Err(e) => {
                    let field = field_name(e.path());
                    let inner = e.into_inner();
                    let location = inner.location().map(|l| Location {
                        line: l.line(),
                        column: l.column(),
                    });
                    let mut message = strip_location(inner.to_string(), location);
                    // yaml_serde starts some messages with the path of the field or of its
                    // parent; the error names the field itself.
                    if let Some((prefix, rest)) = message.split_once(": ") {
                        if field.as_deref().is_some_and(|f| f.starts_with(prefix)) {
                            message = rest.to_owned();
                        }
                    }
                    Err(ConfigError {
                        origin: origin.to_owned(),
                        location,
                        field,
                        message,
                    })
                }
            }
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let result = serde_path_to_error::deserialize::<_, Config>(&mut de)
                .map_err(|e| (field_name(e.path()), e.into_inner()))
                .and_then(|c| de.end().map(|()| c).map_err(|e| (None, e)));
            result.map_err(|(field, inner)| {
                let location = (inner.line() > 0).then(|| Location {
                    line: inner.line(),
                    column: inner.column().max(1),
                });
                ConfigError {
                    origin: origin.to_owned(),
                    location,
                    field,
                    message: strip_location(inner.to_string(), location),
                }
            })
        }
    }
}

fn field_name(path: &serde_path_to_error::Path) -> Option<String> {
    let mut s = path.to_string();
    // An unknown last segment (e.g. where a JSON map failed between entries) says nothing.
    while let Some(parent) = s.strip_suffix(".?") {
        s = parent.to_owned();
    }
    (s != "." && s != "?").then_some(s)
}

/// The parsers append " at line L column C"; the error names the location itself.
fn strip_location(message: String, location: Option<Location>) -> String {
    let Some(l) = location else { return message };
    let suffix = format!(" at line {} column {}", l.line, l.column);
    match message.find(&suffix) {
        Some(at) => format!("{}{}", &message[..at], &message[at + suffix.len()..]),
        None => message,
    }
}

/// `path` relative to `base` unless absolute.
pub fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_owned(),
    }
}
