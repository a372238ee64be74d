//! Per-meter keys for ingest workers, which decode frames of many encrypted meters
//! (Luxembourg Smarty, Austrian M-Bus): a keys file (`--keys FILE`) and the store's
//! `meter_keys` setting.
//!
//! The file is TOML, one table per meter:
//!
//! ```toml
//! [[meter]]
//! id = "534147677001BD54"   # the system title (16 hex digits, or as the meter prints it:
//!                           # SAG677001BD54), or a DSMR equipment id
//! key = "D491470F47126332B07D1923B3504188"       # 32 hex digits
//! auth_key = "00112233445566778899AABBCCDDEEFF"  # optional
//! ```
//!
//! The setting holds the same as JSON: `{"meter": [{"id": …, "key": …, "auth_key": …}]}`.
//! Errors name the line (or entry) and the meter, never a key.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use meterkast_codec::Keys;
use serde::Deserialize;

/// The store setting that holds meter keys (JSON).
pub const SETTING: &str = "meter_keys";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape<E> {
    #[serde(default = "Vec::new")]
    meter: Vec<E>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    key: String,
    auth_key: Option<String>,
}

/// Keys by meter id (normalized: system titles as 16 upper-case hex digits).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MeterKeys(HashMap<String, Keys>);

/// A meter id as the forwarder's topics carry it: a system title written as the meter
/// prints it (`SAG677001BD54`: three letters and 10 hex digits) or in any case as
/// 16 hex digits becomes 16 upper-case hex digits; anything else stays as it is.
pub fn normalize_id(id: &str) -> String {
    let id = id.trim();
    let b = id.as_bytes();
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if b.len() == 16 && hex(b) {
        return id.to_ascii_uppercase();
    }
    if b.len() == 13 && b[..3].iter().all(u8::is_ascii_uppercase) && hex(&b[3..]) {
        let mut s: String = b[..3].iter().map(|c| format!("{c:02X}")).collect();
        s.push_str(&id[3..].to_ascii_uppercase());
        return s;
    }
    id.to_string()
}

impl MeterKeys {
    /// Reads a keys file.
    pub fn load(path: &Path) -> Result<MeterKeys> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the keys file {}", path.display()))?;
        MeterKeys::from_toml(&text, &path.display().to_string())
    }

    /// Parses a keys file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<MeterKeys> {
        let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
        let shape: FileShape<toml::Spanned<Entry>> = toml::from_str(text).map_err(|e| {
            // The message alone: toml's full report quotes the line, which may hold a key.
            let at = e
                .span()
                .map_or(String::new(), |s| format!(" line {}", line(s.start)));
            anyhow::anyhow!("{origin}{at}: {}", e.message().trim())
        })?;
        let mut keys = MeterKeys::default();
        let mut first: HashMap<String, usize> = HashMap::new();
        for e in shape.meter {
            let at = line(e.span().start);
            let e = e.into_inner();
            let id = normalize_id(&e.id);
            if let Some(prev) = first.insert(id.clone(), at) {
                bail!("{origin} line {at}: meter {id} is listed twice (first at line {prev})");
            }
            keys.add(&e, &id, &format!("{origin} line {at}"))?;
        }
        Ok(keys)
    }

    /// Parses the store setting's JSON.
    pub fn from_json(text: &str) -> Result<MeterKeys> {
        let shape: FileShape<Entry> = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("the {SETTING} setting: {e}"))?;
        let mut keys = MeterKeys::default();
        for (i, e) in shape.meter.iter().enumerate() {
            let id = normalize_id(&e.id);
            let place = format!("the {SETTING} setting, entry {}", i + 1);
            if keys.0.contains_key(&id) {
                bail!("{place}: meter {id} is listed twice");
            }
            keys.add(e, &id, &place)?;
        }
        Ok(keys)
    }

    fn add(&mut self, e: &Entry, id: &str, place: &str) -> Result<()> {
        if id.is_empty() {
            bail!("{place}: the meter id is empty");
        }
        let key = |what: &str, hex: &str| {
            meterkast_codec::dlms::cipher::parse_key(hex)
                .map_err(|err| anyhow::anyhow!("{place}: meter {id}: {what}: {err}"))
        };
        let k = Keys {
            encryption: Some(key("key", &e.key)?),
            authentication: e
                .auth_key
                .as_deref()
                .map(|a| key("auth_key", a))
                .transpose()?,
        };
        self.0.insert(id.to_string(), k);
        Ok(())
    }

    /// Adds `other`'s keys; its entries win (the file over the setting).
    pub fn merge(&mut self, other: MeterKeys) {
        self.0.extend(other.0);
    }

    /// The keys for a meter id (any spelling [`normalize_id`] accepts).
    pub fn get(&self, id: &str) -> Option<Keys> {
        self.0.get(&normalize_id(id)).copied()
    }

    /// How many meters have keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no meter has keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "D491470F47126332B07D1923B3504188";

    fn parse(text: &str) -> Result<MeterKeys> {
        MeterKeys::from_toml(text, "keys.toml")
    }

    #[test]
    fn a_keys_file_gives_keys_by_any_spelling_of_the_id() {
        let k = parse(&format!(
            "# meters\n[[meter]]\nid = \"SAG677001BD54\"\nkey = \"{K}\"\n\n[[meter]]\nid = \"E0012\"\nkey = \"{K}\"\nauth_key = \"000102030405060708090a0b0c0d0e0f\"\n"
        ))
        .unwrap();
        assert_eq!(k.len(), 2);
        let a = k.get("534147677001bd54").unwrap();
        assert_eq!(a.encryption.unwrap()[0], 0xD4);
        assert_eq!(a.authentication, None);
        assert_eq!(k.get("SAG677001BD54"), Some(a));
        assert_eq!(k.get("E0012").unwrap().authentication.unwrap()[15], 15);
        assert!(k.get("e0012").is_none(), "equipment ids are exact");
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_name_the_line_and_never_the_key() {
        let secret = "D491470F47126332B07D1923B35041";
        let cases = [
            // Not hex.
            (
                format!("[[meter]]\nid = \"A\"\nkey = \"{secret}ZZ\"\n"),
                "line 1",
                "hexadecimal",
            ),
            // Too short, and too long.
            (
                format!("[[meter]]\nid = \"A\"\nkey = \"{secret}\"\n"),
                "line 1",
                "32 hex digits",
            ),
            (
                format!("\n[[meter]]\nid = \"A\"\nkey = \"{K}\"\nauth_key = \"{secret}0000\"\n"),
                "line 2",
                "auth_key",
            ),
            // Twice.
            (
                format!(
                    "[[meter]]\nid = \"A\"\nkey = \"{K}\"\n[[meter]]\nid = \"A\"\nkey = \"{K}\"\n"
                ),
                "line 4",
                "listed twice (first at line 1)",
            ),
            // An unknown field, a missing key, a stray table.
            (
                format!("[[meter]]\nid = \"A\"\nkye = \"{secret}00\"\n"),
                "line 3",
                "unknown field",
            ),
            ("[[meter]]\nid = \"A\"\n".to_string(), "keys.toml", "key"),
            (
                format!("[meters]\nid = \"A\"\nkey = \"{K}\"\n"),
                "line 1",
                "unknown field",
            ),
        ];
        for (text, at, what) in cases {
            let e = format!("{:#}", parse(&text).unwrap_err());
            assert!(e.contains(at) && e.contains(what), "{text:?}: {e}");
            assert!(!e.contains(secret) && !e.contains("D491470F"), "{e}");
        }
    }

    #[test]
    fn the_setting_holds_the_same_as_json() {
        let k = MeterKeys::from_json(&format!(
            r#"{{"meter": [{{"id": "534147677001BD54", "key": "{K}"}}]}}"#
        ))
        .unwrap();
        assert!(k.get("SAG677001BD54").is_some());
        let e = MeterKeys::from_json(r#"{"meter": [{"id": "x", "key": "12"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry 1") && e.contains("meter x"), "{e}");
        assert!(MeterKeys::from_json(r#"{"meters": []}"#).is_err());
        let mut file = parse(&format!(
            "[[meter]]\nid = \"x\"\nkey = \"{K}\"\nauth_key = \"{K}\"\n"
        ))
        .unwrap();
        file.merge(k);
        assert_eq!(file.len(), 2);
    }
}
