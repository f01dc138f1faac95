//! Reading ledger files and turning parser errors into [`Error`]s with a location.

use std::fmt;
use std::path::Path;

use crate::rules::{LedgerRules, MapOnly};
use crate::Error;

/// The syntax of a ledger file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        })
    }
}

/// A 1-based line and column in a ledger file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

pub(crate) fn from_path(path: &Path) -> Result<LedgerRules, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => sniff(&bytes),
    };
    parse(&bytes, format, Some(path))
}

/// JSON when the first non-blank byte opens an object or array, else YAML.
pub(crate) fn sniff(bytes: &[u8]) -> Format {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => Format::Json,
        _ => Format::Yaml,
    }
}

pub(crate) fn parse(
    bytes: &[u8],
    format: Format,
    path: Option<&Path>,
) -> Result<LedgerRules, Error> {
    let origin = || match path {
        Some(p) => p.display().to_string(),
        None => format!("<{format} bytes>"),
    };
    match format {
        Format::Json => serde_json::from_slice::<MapOnly<LedgerRules>>(bytes)
            .map(|MapOnly(r)| r)
            .map_err(|e| {
                let location = (e.line() > 0).then(|| Location {
                    line: e.line(),
                    column: e.column().max(1),
                });
                let message = strip_location(e.to_string(), e.line(), e.column());
                Error::Invalid {
                    origin: origin(),
                    format,
                    location,
                    message,
                }
            }),
        Format::Yaml => match yaml_serde::from_slice::<Option<MapOnly<LedgerRules>>>(bytes) {
            Ok(rules) => Ok(rules.map(|MapOnly(r)| r).unwrap_or_default()),
            Err(e) => {
                let location = e.location().map(|l| Location {
                    line: l.line(),
                    column: l.column(),
                });
                let mut message = e.to_string();
                if let Some(l) = location {
                    message = strip_location(message, l.line, l.column);
                }
                Err(Error::Invalid {
                    origin: origin(),
                    format,
                    location,
                    message,
                })
            }
        },
    }
}

/// Both parsers append " at line L column C"; the error names the location itself.
fn strip_location(message: String, line: usize, column: usize) -> String {
    let suffix = format!(" at line {line} column {column}");
    match message.find(&suffix) {
        Some(at) => format!("{}{}", &message[..at], &message[at + suffix.len()..]),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"  \n{\"auth\": []}"), Format::Json);
        assert_eq!(sniff(b"[]"), Format::Json);
        assert_eq!(sniff(b"auth: []"), Format::Yaml);
        assert_eq!(sniff(b""), Format::Yaml);
    }

    #[test]
    fn strip_only_the_reported_location() {
        assert_eq!(strip_location("bad at line 2 column 3".into(), 2, 3), "bad");
        assert_eq!(
            strip_location(
                "x at line 2 column 3, while y at line 1 column 1".into(),
                2,
                3
            ),
            "x, while y at line 1 column 1"
        );
        assert_eq!(strip_location("bad".into(), 2, 3), "bad");
    }
}
