//! Whole-file tests: defaults, environment overrides, and the pinned error of every
//! `tests/testdata/config/invalid-*.toml`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
    [app]
    id = "app-1"
    [regions.primary]
    name = "us-east-1"
    [regions.secondary]
    name = "ap-northeast-1"
    [[probes]]
    name = "cfg"
    kind = "dynamodb"
    region = "primary"
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let s = parse(MINIMAL, no_env()).unwrap();
    assert_eq!(s.app.project, "photos");
    assert_eq!(s.monitor.mode, Mode::Auto);
    assert_eq!(s.monitor.failback, Failback::Manual);
    assert_eq!(s.monitor.hold_down, Duration::from_secs(300));
    assert_eq!(s.policy.failover_when, RegionRule::Majority);
    assert_eq!(s.admin.listen, "127.0.0.1:9464".parse().unwrap());
    let p = &s.probes[0];
    assert_eq!(
        (p.interval, p.timeout, p.fall, p.rise),
        (defaults::INTERVAL, defaults::TIMEOUT, 5, 3)
    );
    match &p.check {
        CheckSpec::Dynamodb { table, check } => {
            assert_eq!(table, "photos-config");
            assert_eq!(*check, DynamoCheck::GetItem);
        }
        other => panic!("unexpected check {other:?}"),
    }
}

#[test]
fn environment_overrides_the_file() {
    let env = env(&[
        ("FAILOVER_MONITOR__MONITOR__MODE", "dry-run"),
        ("FAILOVER_MONITOR__MONITOR__HOLD_DOWN", "90s"),
        ("FAILOVER_MONITOR__APP__ID", "from-env"),
        ("FAILOVER_MONITOR_ADMIN_TOKEN", "not-a-key"),
        ("UNRELATED", "x"),
    ]);
    let s = parse(MINIMAL, env).unwrap();
    assert_eq!(s.monitor.mode, Mode::DryRun);
    assert_eq!(s.monitor.hold_down, Duration::from_secs(90));
    assert_eq!(s.app.id, "from-env");
}

/// The message names the variable, since the key is nowhere in the file.
#[test]
fn environment_values_are_validated_like_the_file() {
    let err = parse(
        MINIMAL,
        env(&[("FAILOVER_MONITOR__MONITOR__MODE", "sometimes")]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "monitor.mode (from the environment variable FAILOVER_MONITOR__MONITOR__MODE): \
         unknown variant `sometimes`, expected one of `auto`, `manual`, `dry-run`"
    );
}

#[test]
fn a_typo_in_a_variable_names_the_variable() {
    let err = parse(MINIMAL, env(&[("FAILOVER_MONITOR__MONITOR__MODEE", "x")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "monitor.modee (from the environment variable FAILOVER_MONITOR__MONITOR__MODEE): \
             unknown field `modee`, expected one of `instance_id`, `mode`,"
        ),
        "{err}"
    );
    let err = parse(MINIMAL, env(&[("FAILOVER_MONITOR__MONITR__MODE", "x")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("monitr (from the environment variable FAILOVER_MONITOR__MONITR__MODE)"),
        "{err}"
    );
}

#[test]
fn a_value_refused_by_validation_names_its_variable_too() {
    let err = parse(
        MINIMAL,
        env(&[("FAILOVER_MONITOR__MONITOR__STATE_REFRESH", "10ms")]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "monitor.state_refresh = 10ms (from the environment variable \
         FAILOVER_MONITOR__MONITOR__STATE_REFRESH): must be at least 100ms"
    );
    // A probe list cannot be overridden key by key; the variable is named all the same.
    let err = parse(MINIMAL, env(&[("FAILOVER_MONITOR__PROBES__0__FALL", "2")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("(from the environment variable FAILOVER_MONITOR__PROBES__0__FALL)"),
        "{err}"
    );
}

#[test]
fn an_error_in_the_file_does_not_blame_the_environment() {
    let text = MINIMAL.replace("[[probes]]", "[monitor]\nhold_dwn = \"5m\"\n[[probes]]");
    let err = parse(&text, env(&[("FAILOVER_MONITOR__MONITOR__MODE", "manual")]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("monitor.hold_dwn: unknown field"), "{err}");
}

#[test]
fn a_missing_file_says_where_it_was_looked_for_and_how_to_name_another() {
    let err = load(Path::new("no-such-dir/monitor.toml"))
        .unwrap_err()
        .to_string();
    let cwd = std::env::current_dir().unwrap();
    let looked_for = cwd.join("no-such-dir/monitor.toml");
    assert_eq!(
        err,
        format!(
            "no-such-dir/monitor.toml: cannot read the config file: it does not exist \
             (looked for {}); `--config PATH` names another file, and without it the file \
             is ./monitor.toml in the working directory",
            looked_for.display()
        )
    );
}

/// Each `tests/testdata/config/invalid-*.toml` starts with `# error: <exact text>`: what
/// `check-config` and `run` say (without an admin token in the environment).
#[test]
fn invalid_configs_fail_with_the_exact_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/testdata/config");
    let mut seen = 0;
    let mut mismatches = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("invalid-") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{name}: first line must be `# error: ...`"));
        let got = parse(&text, no_env())
            .and_then(|s| for_run_with_env(s, no_env()))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        if got != expected {
            mismatches.push(format!(
                "{name}:\n  expected: {expected}\n       got: {got}"
            ));
        }
        seen += 1;
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(seen >= 15, "only {seen} invalid configs found");
}

#[test]
fn the_shipped_monitor_toml_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monitor.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let s = parse(&text, no_env()).unwrap();
    let kinds: HashSet<&str> = s.probes.iter().map(|p| p.kind()).collect();
    for k in ["http", "s3", "dynamodb", "cloudwatch_alarm"] {
        assert!(kinds.contains(k), "monitor.toml has no {k} probe");
    }
    assert!(for_run_with_env(s, no_env()).is_ok());
}

#[test]
fn a_file_without_probes_is_for_provision_and_run_refuses_it() {
    let text = "[app]\nid = \"a\"\n[regions.primary]\nname = \"us-east-1\"\n\
                [regions.secondary]\nname = \"ap-northeast-1\"\n\
                [probe_defaults]\ninterval = \"1s\"\nfall = 3\n";
    let s = parse(text, no_env()).unwrap();
    assert!(s.probes.is_empty());
    assert_eq!(s.probe_defaults.interval, Duration::from_secs(1));
    assert_eq!(s.probe_defaults.fall, 3);
    assert_eq!(s.probe_defaults.rise, defaults::RISE);
    let err = for_run(s).unwrap_err().to_string();
    assert!(
        err.starts_with("probes = 0 probe(s): `run` needs at least one probe"),
        "{err}"
    );
}

#[test]
fn an_exposed_admin_api_runs_only_with_a_token() {
    let text = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9464\"\n");
    let s = parse(&text, no_env()).unwrap();
    let err = for_run_with_env(s.clone(), no_env())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "admin.listen = \"0.0.0.0:9464\": a non-loopback address needs an admin token \
         (admin.token_file or FAILOVER_MONITOR_ADMIN_TOKEN)"
    );
    let token = env(&[("FAILOVER_MONITOR_ADMIN_TOKEN", "0123456789abcdef")]);
    // a token, but in cleartext: refused unless a TLS-terminating proxy is declared
    let err = for_run_with_env(s.clone(), token.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "admin.listen = \"0.0.0.0:9464\": a non-loopback address without TLS would \
             carry the tokens in cleartext"
        ),
        "{err}"
    );
    let sidecar = parse(&format!("{text}allow_cleartext_token = true\n"), no_env()).unwrap();
    let (_, tokens) = for_run_with_env(sidecar, token).unwrap();
    assert!(tokens.admin.is_some());
    // A token that would not load is refused the same way by both commands.
    let short = env(&[("FAILOVER_MONITOR_ADMIN_TOKEN", "short")]);
    let err = for_run_with_env(s, short).unwrap_err().to_string();
    assert!(
        err.starts_with("FAILOVER_MONITOR_ADMIN_TOKEN = [redacted]"),
        "{err}"
    );
}

/// The read-only token loads like the admin token (environment first, then the
/// file), must differ from it, and does not open a non-loopback address alone.
#[test]
fn a_read_token_loads_beside_the_admin_token() {
    let dir = std::env::temp_dir().join(format!("fm-read-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("read-token");
    std::fs::write(&file, "read-token-from-file-0123\n").unwrap();
    let text = format!(
        "{MINIMAL}\n[admin]\nread_token_file = {:?}\n",
        file.display().to_string()
    );
    let s = parse(&text, no_env()).unwrap();
    assert_eq!(s.admin.read_token_file.as_deref(), Some(file.as_path()));
    let (_, tokens) = for_run_with_env(s.clone(), no_env()).unwrap();
    assert!(tokens.admin.is_none());
    assert_eq!(
        tokens.read.as_ref().map(|t| t.expose()),
        Some("read-token-from-file-0123")
    );
    // the variable wins over the file
    let from_env = env(&[(
        "FAILOVER_MONITOR_ADMIN_READ_TOKEN",
        "read-token-from-env-0123",
    )]);
    let (_, tokens) = for_run_with_env(s.clone(), from_env).unwrap();
    assert_eq!(
        tokens.read.as_ref().map(|t| t.expose()),
        Some("read-token-from-env-0123")
    );
    // same rules as the admin token, and never printed
    let short = env(&[("FAILOVER_MONITOR_ADMIN_READ_TOKEN", "short")]);
    assert_eq!(
        for_run_with_env(s.clone(), short).unwrap_err().to_string(),
        "FAILOVER_MONITOR_ADMIN_READ_TOKEN = [redacted]: must be at least 16 characters"
    );
    // the same value as the admin token is refused
    let same = env(&[("FAILOVER_MONITOR_ADMIN_TOKEN", "read-token-from-file-0123")]);
    let err = for_run_with_env(s.clone(), same).unwrap_err().to_string();
    assert!(
        err.starts_with("admin.read_token_file = \"")
            && err.ends_with(": the read-only token must differ from the admin token"),
        "{err}"
    );
    assert!(!err.contains("read-token-from-file-0123"), "{err}");
    // a missing file names the key
    let text = format!("{MINIMAL}\n[admin]\nread_token_file = \"/nonexistent/read-token\"\n");
    let err = for_run_with_env(parse(&text, no_env()).unwrap(), no_env())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("admin.read_token_file = \"/nonexistent/read-token\": cannot be read"),
        "{err}"
    );
    // a read-only token alone does not open a non-loopback address
    let exposed = env(&[
        ("FAILOVER_MONITOR__ADMIN__LISTEN", "0.0.0.0:9464"),
        (
            "FAILOVER_MONITOR_ADMIN_READ_TOKEN",
            "read-token-from-env-0123",
        ),
    ]);
    let s = parse(MINIMAL, exposed.clone()).unwrap();
    assert!(
        for_run_with_env(s, exposed)
            .unwrap_err()
            .to_string()
            .contains("a non-loopback address needs an admin token")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_admin_address_from_the_environment_names_its_variable() {
    let listen = env(&[("FAILOVER_MONITOR__ADMIN__LISTEN", "0.0.0.0:9464")]);
    let s = parse(MINIMAL, listen.clone()).unwrap();
    let err = for_run_with_env(s, listen).unwrap_err().to_string();
    assert_eq!(
        err,
        "admin.listen = \"0.0.0.0:9464\" (from the environment variable \
         FAILOVER_MONITOR__ADMIN__LISTEN): a non-loopback address needs an admin token \
         (admin.token_file or FAILOVER_MONITOR_ADMIN_TOKEN)"
    );
}

/// `stack.tables`: one rule for the daemon and `provision`. Global tables unless
/// `per-region` is set, whether or not a region has an `endpoint_url` (the local
/// emulator replicates as AWS does).
#[test]
fn tables_are_global_unless_per_region_is_set() {
    let endpoints = |primary: bool, secondary: bool| {
        let mut text = MINIMAL.to_owned();
        if primary {
            text = text.replace(
                "name = \"us-east-1\"",
                "name = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:5001\"",
            );
        }
        if secondary {
            text = text.replace(
                "name = \"ap-northeast-1\"",
                "name = \"ap-northeast-1\"\nendpoint_url = \"http://127.0.0.1:5002\"",
            );
        }
        text
    };
    for (p, s) in [(false, false), (true, false), (false, true), (true, true)] {
        let settings = parse(&endpoints(p, s), no_env()).unwrap();
        assert_eq!(settings.stack.tables, None);
        assert_eq!(
            settings.tables_mode(),
            TablesMode::Global,
            "endpoint on the primary: {p}, on the secondary: {s}"
        );
    }
    let emulator = endpoints(true, true);
    for (tables, want) in [
        ("per-region", TablesMode::PerRegion),
        ("global", TablesMode::Global),
    ] {
        let set = format!("{emulator}\n[stack]\ntables = \"{tables}\"\n");
        assert_eq!(
            parse(&set, no_env()).unwrap().tables_mode(),
            want,
            "{tables}"
        );
        let by_env = env(&[("FAILOVER_MONITOR__STACK__TABLES", tables)]);
        assert_eq!(
            parse(&emulator, by_env).unwrap().tables_mode(),
            want,
            "{tables}"
        );
    }
}

/// Issue 17, item 5i: a configuration error never echoes the secrets a probe URL
/// can carry (credentials, a presigned signature, an API key), whether the value is
/// refused, lacks a scheme, or breaks the file's syntax.
#[test]
fn config_errors_do_not_echo_url_secrets() {
    let base = "[app]\nid = \"a\"\n[regions.primary]\nname = \"us-east-1\"\n\
                [regions.secondary]\nname = \"ap-northeast-1\"\n";
    for probe in [
        "[[probes]]\nname = \"p\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"ftp://u:hunter2@h/?X-Amz-Signature=hunter2\"\n",
        "[[probes]]\nname = \"p\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"h/?token=hunter2\"\n",
        "[[probes]]\nname = \"p\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"https://h/?k=hunter2\" oops\n",
    ] {
        let err = parse(&format!("{base}{probe}"), no_env())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("probes") || err.contains("line"), "{err}");
    }
}
