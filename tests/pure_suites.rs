//! The suites are named by layer, the opt-in ones are opt-in through Cargo features,
//! and tests/README.md's table lists every one of them. A plain `cargo test` prints
//! this file's test names, which say how to run the rest.

use std::collections::BTreeSet;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The layers a suite's file name may start with, and the feature an opt-in layer
/// needs (None: it runs in a plain `cargo test`).
const LAYERS: &[(&str, Option<&str>)] = &[
    ("pure_", None),
    ("inproc_", None),
    ("sim_", None),
    ("proc_", None),
    ("e2e_", Some("e2e")),
    ("random_", Some("randomized")),
];

/// Every Rust test suite: `tests/*.rs` and `crates/*/tests/*.rs`, as the paths the
/// table names.
fn suites() -> BTreeSet<String> {
    let mut dirs = vec!["tests".to_string()];
    for c in std::fs::read_dir(repo().join("crates")).unwrap() {
        let name = c.unwrap().file_name().to_string_lossy().into_owned();
        if repo().join("crates").join(&name).join("tests").is_dir() {
            dirs.push(format!("crates/{name}/tests"));
        }
    }
    let mut out = BTreeSet::new();
    for dir in dirs {
        for e in std::fs::read_dir(repo().join(&dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".rs") {
                out.insert(format!("{dir}/{name}"));
            }
        }
    }
    out
}

/// The `[[test]]` targets of the root Cargo.toml with their required features.
fn declared() -> Vec<(String, Vec<String>)> {
    let text = read("Cargo.toml");
    let mut out = Vec::new();
    for block in text.split("[[test]]").skip(1) {
        let field = |key: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|rest| rest.trim().trim_start_matches('=').trim().to_string())
        };
        let name = field("name").expect("a [[test]] without a name");
        let features = field("required-features")
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .split(',')
            .map(|f| f.trim().trim_matches('"').to_string())
            .filter(|f| !f.is_empty())
            .collect();
        out.push((name.trim_matches('"').to_string(), features));
    }
    out
}

#[test]
fn every_suite_is_named_by_its_layer_and_listed_in_tests_readme() {
    let table = read("tests/README.md");
    for suite in suites() {
        let file = suite.rsplit('/').next().unwrap();
        assert!(
            LAYERS.iter().any(|(prefix, _)| file.starts_with(prefix)),
            "{suite}: the file name must start with its layer ({:?})",
            LAYERS.iter().map(|(p, _)| *p).collect::<Vec<_>>()
        );
        assert!(
            table.contains(&format!("| `{suite}` |")),
            "{suite} is missing from the table of tests/README.md"
        );
    }
}

#[test]
fn opt_in_suites_run_with_cargo_test_features_e2e_or_randomized_or_tests_run_sh() {
    let declared = declared();
    for suite in suites().iter().filter(|s| s.starts_with("tests/")) {
        let name = suite.trim_start_matches("tests/").trim_end_matches(".rs");
        let (_, needs) = LAYERS.iter().find(|(p, _)| name.starts_with(p)).unwrap();
        let features = declared
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        match needs {
            Some(feature) => assert!(
                features.iter().any(|f| f == feature),
                "{suite} needs the emulator: declare it in Cargo.toml with \
                 required-features = [\"{feature}\"]"
            ),
            None => assert!(
                features.iter().all(|f| f == "provision"),
                "{suite} must run in a plain `cargo test`, yet requires {features:?}"
            ),
        }
    }
    // The test command turns every opt-in feature on.
    let run = read("tests/run.sh");
    for feature in ["e2e", "randomized"] {
        assert!(
            run.contains(&format!("failover-monitor/{feature}")),
            "tests/run.sh does not run the suites behind `{feature}`"
        );
    }
}
