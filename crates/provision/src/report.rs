//! What `provision` prints: one line per resource (the plan's verdicts, apply's and
//! destroy's progress) and a summary, as text or as JSON lines (`--json`). It
//! implements the engine's [`Progress`] and knows nothing of the kinds.

use std::io::Write;

use serde_json::json;
use tokio::time::Instant;

use failover_provision_engine::{Action, Plan, Progress, Resource, Step, Summary};

/// Where progress goes: one line per resource, as text or JSON lines.
pub struct Reporter {
    pub json: bool,
}

impl<C> Progress<C> for Reporter {
    fn step(&self, r: &Resource<C>, verb: &str, outcome: &str, detail: Option<&str>, ms: u128) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let v = json!({"event": verb, "kind": r.kind.name(), "name": r.name,
                "region": r.region, "outcome": outcome, "detail": detail, "ms": ms as u64});
            let _ = writeln!(out, "{v}");
        } else {
            let d = detail.map(|d| format!(": {d}")).unwrap_or_default();
            let _ = writeln!(out, "{verb:<8} {r} ... {outcome}{d} ({ms} ms)");
        }
        let _ = out.flush();
    }
}

impl Reporter {
    fn plan_line<C>(&self, step: &Step<C>) {
        let r = &step.resource;
        if self.json {
            let (action, detail) = match serde_json::to_value(&step.action) {
                Ok(v) => (v["action"].clone(), v.get("detail").cloned()),
                Err(_) => (serde_json::Value::Null, None),
            };
            let v = json!({"event": "plan", "kind": r.kind.name(),
                "name": r.name, "region": r.region,
                "action": action, "detail": detail, "spec": r.spec()});
            println!("{v}");
            return;
        }
        let (symbol, word, detail) = match &step.action {
            Action::Create => ("+", "create", String::new()),
            Action::Update(d) => ("~", "update", format!(": {}", d.join("; "))),
            Action::Keep => ("=", "up to date", String::new()),
            Action::Delete => ("-", "delete", String::new()),
            Action::Absent => ("=", "absent", String::new()),
            Action::Refuse(why) => ("!", "foreign", format!(": refused, {why}")),
            // Says which resource it waits for: `unknown until iam-role x exists`.
            Action::Unknown(why) => ("?", why.as_str(), String::new()),
        };
        println!("{symbol} {r} {word}{detail}");
    }

    pub fn plan<C>(&self, plan: &Plan<C>, destroy: bool) {
        for s in &plan.steps {
            self.plan_line(s);
        }
        let (refused, unknown) = (plan.refusals().len(), plan.unknown());
        if self.json {
            println!(
                "{}",
                json!({"event": "summary", "changes": plan.changes(), "refused": refused,
                    "unknown": unknown})
            );
            return;
        }
        let what = if destroy {
            "to delete"
        } else {
            "to create or update"
        };
        let undecided = match unknown {
            0 => String::new(),
            n => format!("; {n} to be decided once the resources before them exist"),
        };
        println!(
            "{} of {} resources {what}; {refused} refused{undecided}",
            plan.changes(),
            plan.steps.len()
        );
    }

    /// The last line of apply or destroy.
    pub fn finish(&self, what: &str, sum: &Summary, t: Instant) {
        let ms = t.elapsed().as_millis() as u64;
        if self.json {
            println!(
                "{}",
                json!({"event": "summary", "command": what, "created": sum.created,
                    "updated": sum.updated, "deleted": sum.deleted, "unchanged": sum.unchanged, "ms": ms})
            );
        } else {
            println!(
                "{what} complete: {} created, {} updated, {} deleted, {} unchanged ({:.1} s)",
                sum.created,
                sum.updated,
                sum.deleted,
                sum.unchanged,
                ms as f64 / 1000.0
            );
        }
    }
}
