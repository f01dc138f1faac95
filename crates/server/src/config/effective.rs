//! The effective configuration, printed by `moco check-config`.

use super::{Config, Format, LoadedConfig};

/// The effective configuration as YAML: every field with its value, defaults included. An
/// inline ledger is copied from the file with plain-text passwords redacted.
pub fn effective_yaml(loaded: Option<&LoadedConfig>, config: &Config) -> String {
    let mut value = yaml_serde::to_value(config).expect("the configuration serializes");
    if config.hooks.auth.ledger.is_some() {
        if let Some(mut ledger) = loaded.and_then(|l| inline_ledger_value(&l.bytes, l.format)) {
            redact(&mut ledger);
            if let Some(auth) = value
                .get_mut("hooks")
                .and_then(|h| h.get_mut("auth"))
                .and_then(|a| a.as_mapping_mut())
            {
                auth.insert("ledger".into(), ledger);
            }
        }
    }
    yaml_serde::to_string(&value).expect("YAML serializes")
}

fn inline_ledger_value(bytes: &[u8], format: Format) -> Option<yaml_serde::Value> {
    let doc: yaml_serde::Value = match format {
        Format::Yaml => yaml_serde::from_slice(bytes).ok()?,
        Format::Json => {
            let j: serde_json::Value = serde_json::from_slice(bytes).ok()?;
            yaml_serde::to_value(j).ok()?
        }
    };
    doc.get("hooks")?.get("auth")?.get("ledger").cloned()
}

fn redact(v: &mut yaml_serde::Value) {
    match v {
        yaml_serde::Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let is_password = k.as_str() == Some("password");
                let hashed = v
                    .as_str()
                    .is_some_and(|s| s.starts_with("$argon2") || s.starts_with("$2"));
                if is_password && v.is_string() && !hashed {
                    *v = "<redacted>".into();
                } else {
                    redact(v);
                }
            }
        }
        yaml_serde::Value::Sequence(s) => s.iter_mut().for_each(redact),
        yaml_serde::Value::Tagged(t) => redact(&mut t.value),
        _ => {}
    }
}
