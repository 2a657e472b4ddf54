//! `docs/REFERENCE.md`, section "Command line", names every command, subcommand and
//! flag clap accepts, and no other. Each usage line there is an inline code span that
//! starts with `failover-monitor`: the words after it name the subcommand path
//! (`a|b` for several), then its flags (`--name`, with the value after it when the
//! flag takes one) and positionals (UPPERCASE words).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::CommandFactory;

use super::Cli;

/// Every subcommand path (`""` is the binary itself) with its flags and positionals:
/// `--name` for a flag, the value name (`STATE`) for a positional.
fn tree() -> Tree {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Tree) {
        let args = cmd
            .get_arguments()
            .filter(|a| !["help", "version"].contains(&a.get_id().as_str()))
            .map(|a| match a.get_long() {
                Some(long) => format!("--{long}"),
                None => a
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map_or_else(|| a.get_id().as_str().to_uppercase(), |n| n.to_string()),
            })
            .collect();
        out.insert(path.to_owned(), args);
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let sub_path = format!("{path} {}", sub.get_name()).trim().to_owned();
            walk(sub, &sub_path, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&Cli::command(), "", &mut out);
    out
}

/// Whether `arg` of `tree` at `path` takes a value (a flag followed by its value in a
/// usage line); looked up at the path and its ancestors (global flags).
fn takes_value(path: &str, arg: &str) -> bool {
    let cmd = Cli::command();
    let mut chain = vec![cmd.clone()];
    let mut cur = cmd;
    for word in path.split_whitespace() {
        match cur.find_subcommand(word) {
            Some(sub) => {
                cur = sub.clone();
                chain.push(cur.clone());
            }
            None => return false,
        }
    }
    chain.iter().rev().any(|c| {
        c.get_arguments().any(|a| {
            a.get_long().map(|l| format!("--{l}")).as_deref() == Some(arg)
                && a.get_action().takes_values()
        })
    })
}

/// What a usage line documents: the paths it names and the arguments after them.
#[derive(Debug, PartialEq)]
struct Usage {
    paths: Vec<String>,
    args: Vec<String>,
    /// A word where a subcommand would be that is not one of the CLI.
    stray: Option<String>,
}

fn parse_usage(span: &str, tree: &Tree) -> Option<Usage> {
    let mut words = span.split_whitespace().peekable();
    if words.next() != Some("failover-monitor") {
        return None;
    }
    let mut paths = vec![String::new()];
    while let Some(word) = words.peek() {
        let next: Vec<String> = paths
            .iter()
            .flat_map(|p| {
                word.split('|')
                    .map(move |w| format!("{p} {w}").trim().to_owned())
            })
            .collect();
        if next.iter().all(|p| tree.contains_key(p)) {
            paths = next;
            words.next();
        } else {
            break;
        }
    }
    let stray = words
        .peek()
        .filter(|w| {
            w.starts_with(|c: char| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '|')
        })
        .map(|w| w.to_string());
    let mut args = Vec::new();
    while let Some(word) = words.next() {
        let bare = word.trim_matches(|c| matches!(c, '[' | ']' | '.'));
        if bare.starts_with("--") {
            if paths.iter().any(|p| takes_value(p, bare))
                && words.peek().is_some_and(|w| !w.starts_with('['))
            {
                words.next();
            }
            args.push(bare.to_owned());
        } else if !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        {
            args.push(bare.to_owned());
        }
    }
    Some(Usage { paths, args, stray })
}

/// The section "## Command line".
fn section(reference: &str) -> &str {
    let body = reference
        .split("\n## Command line\n")
        .nth(1)
        .expect("docs/REFERENCE.md has a section \"## Command line\"");
    body.split("\n## ").next().unwrap_or(body)
}

/// The inline code spans of the section (a span may go on over a line break).
fn spans(section: &str) -> Vec<String> {
    let text: Vec<&str> = section
        .lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .collect();
    text.join(" ")
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Whether a documented top-level command is one this build leaves out.
fn built_without(path: &str) -> bool {
    let top = path.split_whitespace().next().unwrap_or("");
    cfg!(not(feature = "provision")) && ["provision", "photo", "comments"].contains(&top)
}

type Tree = BTreeMap<String, BTreeSet<String>>;

/// Whether `arg` is an argument of `path` or of an ancestor (global flags).
fn known(tree: &Tree, path: &str, arg: &str) -> bool {
    let mut prefix = path;
    loop {
        if tree.get(prefix).is_some_and(|a| a.contains(arg)) {
            return true;
        }
        match prefix.rsplit_once(' ') {
            Some((up, _)) => prefix = up,
            None if !prefix.is_empty() => prefix = "",
            None => return false,
        }
    }
}

/// What the section documents, path by path, and what it names that the CLI lacks.
fn documented(section: &str, tree: &Tree) -> (Tree, Vec<String>) {
    let mut documented = Tree::new();
    let mut unknown = Vec::new();
    for span in spans(section) {
        let Some(usage) = parse_usage(&span, tree) else {
            continue;
        };
        if let Some(word) = &usage.stray {
            // A command this build leaves out (`provision` without its feature).
            if usage
                .paths
                .iter()
                .any(|p| built_without(&format!("{p} {word}")))
            {
                continue;
            }
            unknown.push(format!("{span}: subcommand {word}"));
        }
        for p in &usage.paths {
            let entry = documented.entry(p.clone()).or_default();
            entry.extend(usage.args.iter().cloned());
        }
        for arg in &usage.args {
            if !usage.paths.iter().any(|p| known(tree, p, arg)) {
                unknown.push(format!("{span}: {arg}"));
            }
        }
    }
    (documented, unknown)
}

/// The commands and arguments of `tree` that `documented` does not show.
fn missing(tree: &Tree, documented: &Tree) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, args) in tree {
        // A command that only groups others is documented by theirs.
        let under = |p: &String| p == path || p.starts_with(&format!("{path} "));
        if !documented.keys().any(under) {
            missing.push(format!("`failover-monitor {path}`"));
            continue;
        }
        // A flag may be documented at its command or below it (global flags).
        for arg in args {
            let shown = documented
                .iter()
                .any(|(p, a)| (under(p) || path.is_empty()) && a.contains(arg));
            if !shown {
                missing.push(format!("`failover-monitor {path}`: {arg}"));
            }
        }
    }
    missing
}

#[test]
fn the_reference_documents_every_command_and_flag_and_no_other() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/REFERENCE.md");
    let reference = std::fs::read_to_string(path).unwrap();
    let section = section(&reference);
    let tree = tree();
    let (documented, unknown) = documented(section, &tree);
    let missing = missing(&tree, &documented);
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/REFERENCE.md, \"Command line\": missing {missing:#?}, not in the CLI {unknown:#?}"
    );
    for name in [
        "FAILOVER_MONITOR_ADMIN_TOKEN",
        "FAILOVER_MONITOR_ADMIN_READ_TOKEN",
        super::caller::CALLER_ENV,
        "SUDO_USER",
        "RUST_LOG",
        failover_config::ENV_PREFIX,
        "Exit codes",
    ] {
        assert!(section.contains(name), "the section names {name}");
    }
}

#[test]
fn usage_lines_are_read_with_the_cli_tree() {
    let tree = tree();
    let usage = |s: &str| parse_usage(s, &tree).unwrap();
    assert_eq!(
        usage("failover-monitor state set STATE [--reason TEXT] [--force]"),
        Usage {
            paths: vec!["state set".into()],
            args: vec!["STATE".into(), "--reason".into(), "--force".into()],
            stray: None,
        }
    );
    let stray = usage("failover-monitor state frobnicate [--json]");
    assert_eq!(
        (stray.paths, stray.stray),
        (vec!["state".to_owned()], Some("frobnicate".to_owned()))
    );
    assert_eq!(
        usage("failover-monitor admin health|status").paths,
        ["admin health", "admin status"]
    );
    assert_eq!(
        usage("failover-monitor [--config PATH] [--log-format text|json] <command>").args,
        ["--config", "--log-format"]
    );
    assert!(parse_usage("state set", &tree).is_none());
    assert_eq!(
        spans("a `failover-monitor state get\n[--json]` b `c`"),
        ["failover-monitor state get [--json]", "c"]
    );
    assert!(tree["admin"].contains("--url") && tree["state set"].contains("STATE"));
}
