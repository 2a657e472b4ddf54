//! `docs/REFERENCE.md` lists exactly the keys the schema accepts: the field names come
//! from serde itself (what `deny_unknown_fields` checks against), the documented ones
//! from the tables of the section "Configuration keys".

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::RawConfig;
use super::admin::RawAdmin;
use super::app::RawApp;
use super::client_path::RawClientPath;
use super::coordination::RawCoordination;
use super::drills::RawDrills;
use super::monitor::RawMonitor;
use super::policy::RawPolicy;
use super::probes::{RawProbe, RawProbeDefaults};
use super::readiness::RawReadiness;
use super::regions::{RawRegion, RawRegions};
use super::route53::RawRoute53;
use super::stack::RawStack;

/// A deserializer that answers nothing and only records the field list a derived
/// `Deserialize` hands to `deserialize_struct`.
struct FieldNames;

#[derive(Debug)]
struct Captured(Option<&'static [&'static str]>);

impl fmt::Display for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "captured {:?}", self.0)
    }
}

impl std::error::Error for Captured {}

impl de::Error for Captured {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Captured(None)
    }
}

impl<'de> Deserializer<'de> for FieldNames {
    type Error = Captured;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
        Err(Captured(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Captured> {
        Err(Captured(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// The keys serde accepts for `T`.
fn fields<T: Deserialize<'static>>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Captured(Some(fields))) => fields,
        _ => panic!("{} is not a struct", std::any::type_name::<T>()),
    }
}

/// Every `section.key` the schema accepts, sections named as in the file.
fn schema_keys() -> BTreeSet<String> {
    let sections: [(&str, &[&str]); 14] = [
        ("app", fields::<RawApp>()),
        ("regions.primary", fields::<RawRegion>()),
        ("regions.secondary", fields::<RawRegion>()),
        ("monitor", fields::<RawMonitor>()),
        ("probe_defaults", fields::<RawProbeDefaults>()),
        ("probes", fields::<RawProbe>()),
        ("policy", fields::<RawPolicy>()),
        ("admin", fields::<RawAdmin>()),
        ("stack", fields::<RawStack>()),
        ("coordination", fields::<RawCoordination>()),
        ("route53", fields::<RawRoute53>()),
        ("client_path", fields::<RawClientPath>()),
        ("readiness", fields::<RawReadiness>()),
        ("drills", fields::<RawDrills>()),
    ];
    // A section added to the file's schema must be added above (and documented).
    let mut top: Vec<&str> = fields::<RawConfig>().to_vec();
    top.retain(|s| *s != "regions");
    let regions: Vec<String> = fields::<RawRegions>()
        .iter()
        .map(|r| format!("regions.{r}"))
        .collect();
    let listed: BTreeSet<&str> = sections.iter().map(|(s, _)| *s).collect();
    for section in top
        .iter()
        .copied()
        .chain(regions.iter().map(String::as_str))
    {
        assert!(
            listed.contains(section),
            "section [{section}] is not listed here"
        );
    }
    sections
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |k| format!("{section}.{k}")))
        .collect()
}

/// The `section.key` rows of "## Configuration keys": each `### ` heading names its
/// sections in brackets (`[monitor]`, `[[probes]]`), each table row starts with the
/// key in backticks.
fn documented_keys(reference: &str) -> BTreeSet<String> {
    let body = reference
        .split("\n## Configuration keys\n")
        .nth(1)
        .expect("docs/REFERENCE.md has a section \"## Configuration keys\"");
    let body = body.split("\n## ").next().unwrap_or(body);
    let mut sections: Vec<String> = Vec::new();
    let mut keys = BTreeSet::new();
    for line in body.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            sections = heading
                .split('`')
                .filter_map(|part| {
                    let name = part.trim_start_matches('[').trim_end_matches(']');
                    (part.starts_with('[') && !name.is_empty()).then(|| name.to_owned())
                })
                .collect();
        } else if let Some(row) = line.strip_prefix("| `") {
            let key = row.split('`').next().unwrap_or_default();
            assert!(!sections.is_empty(), "row `{key}` before any ### [section]");
            for section in &sections {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    keys
}

#[test]
fn the_reference_documents_every_key_and_no_other() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/REFERENCE.md");
    let reference = std::fs::read_to_string(path).unwrap();
    let documented = documented_keys(&reference);
    let schema = schema_keys();
    let missing: Vec<_> = schema.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&schema).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/REFERENCE.md, \"Configuration keys\": missing {missing:?}, not in the schema {unknown:?}"
    );
}

#[test]
fn field_names_come_from_serde() {
    assert_eq!(fields::<RawRegion>(), ["name", "endpoint_url"]);
    let doc = "## Configuration keys\n### `[app]`\n| key |\n|---|\n| `id` | x |\n\
               ### `[regions.primary]`, `[regions.secondary]`\n| `name` | x |\n## Next\n| `no` |\n";
    let keys: Vec<String> = documented_keys(&format!("\n{doc}")).into_iter().collect();
    assert_eq!(
        keys,
        ["app.id", "regions.primary.name", "regions.secondary.name"]
    );
}
