//! `drill run|status|abort`: practice failovers through the running monitor's admin
//! API (`POST /v1/drills`, `GET /v1/drills`, `POST /v1/drills/abort`). `run` follows
//! the drill step by step until it ends, and says where its recovery reports are.

use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use super::args::{DrillArgs, DrillCommand};
use super::daemon::{Endpoint, Needs, Session};
use super::{Loaded, caller};

/// How often `drill run` reads the drill's record.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

pub async fn run(args: DrillArgs, config: Loaded) -> anyhow::Result<()> {
    let needs = match args.command {
        DrillCommand::Status => Needs::Read,
        _ => Needs::Admin,
    };
    let who = match needs {
        Needs::Admin => caller::resolve(args.daemon.caller.as_deref())?,
        _ => String::new(),
    };
    let endpoint = Endpoint::resolve(&args.daemon, args.read_token_file, needs, &config);
    let session = endpoint.session(needs)?;
    match args.command {
        DrillCommand::Status => {
            let answer = session.get("/v1/drills").await?;
            session.check(&answer)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&answer.body)?);
            } else {
                println!("{}", render(&answer.body["drill"]).trim_end());
            }
            Ok(())
        }
        DrillCommand::Abort { reason } => {
            let answer = session
                .post("/v1/drills/abort", json!({"caller": who, "reason": reason}))
                .await?;
            session.check(&answer)?;
            println!(
                "drill {} is stopping (it returns to active when the primary is healthy)",
                answer.body["id"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        DrillCommand::Run {
            reason,
            hold,
            fence,
            no_wait,
        } => {
            if reason.trim().is_empty() {
                bail!("--reason must not be empty");
            }
            let mut body = json!({"reason": reason, "caller": who});
            if let Some(h) = hold {
                body["hold"] = humantime::format_duration(h).to_string().into();
            }
            if let Some(f) = fence {
                body["fence"] = humantime::format_duration(f).to_string().into();
            }
            let answer = session.post("/v1/drills", body).await?;
            session.check(&answer)?;
            let id = answer.body["id"].as_str().unwrap_or_default().to_owned();
            if args.json && no_wait {
                println!("{}", serde_json::to_string_pretty(&answer.body)?);
            } else if !args.json {
                println!(
                    "drill {id} started by {} (hold {} s, fence {} s, deadline {})",
                    answer.body["by"].as_str().unwrap_or("?"),
                    answer.body["hold_s"],
                    answer.body["fence_s"],
                    answer.body["deadline"].as_str().unwrap_or("?")
                );
            }
            if no_wait {
                return Ok(());
            }
            let done = follow(&session, &id, !args.json).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                println!("{}", render(&done).trim_end());
            }
            match done["outcome"].as_str() {
                Some("SUCCEEDED") => Ok(()),
                other => bail!(
                    "drill {id} {}: {}",
                    other.unwrap_or("ended"),
                    done["why"].as_str().unwrap_or("no reason recorded")
                ),
            }
        }
    }
}

/// Reads the drill record until drill `id` has an outcome, printing each new step
/// (when `print`).
async fn follow(session: &Session, id: &str, print: bool) -> anyhow::Result<Value> {
    let mut step = String::new();
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let drill = match session.get("/v1/drills").await {
            Ok(a) if a.status == 200 => {
                failures = 0;
                a.body["drill"].clone()
            }
            Ok(a) => {
                session.check(&a)?;
                continue;
            }
            Err(e) => {
                // The daemon restarting, or the network: a few misses are waited out.
                failures += 1;
                if failures >= 30 {
                    bail!(
                        "the daemon stopped answering while drill {id} ran: {e:#}; \
                         `drill status` shows how it ended"
                    );
                }
                continue;
            }
        };
        if drill["id"].as_str() != Some(id) {
            bail!(
                "the drill record now holds another drill ({}); drill {id} was replaced",
                drill["id"].as_str().unwrap_or("none")
            );
        }
        let now = drill["step"].as_str().unwrap_or("?").to_owned();
        if print && now != step {
            println!("  step: {now}");
            step = now;
        }
        if !drill["outcome"].is_null() {
            return Ok(drill);
        }
    }
}

/// A drill record for people: outcome, steps, checks, the reports of its moves.
pub fn render(d: &Value) -> String {
    if d.is_null() {
        return "no drill has run yet".into();
    }
    let mut out = format!(
        "drill {}  {}  step {}{}\n  by {}: {}\n  started {}  ended {}\n",
        d["id"].as_str().unwrap_or("?"),
        d["outcome"].as_str().unwrap_or("RUNNING"),
        d["step"].as_str().unwrap_or("?"),
        if d["scheduled"] == true {
            "  (scheduled)"
        } else {
            ""
        },
        d["by"].as_str().unwrap_or("?"),
        d["reason"].as_str().unwrap_or(""),
        d["started_at"].as_str().unwrap_or("?"),
        d["ended_at"].as_str().unwrap_or("-"),
    );
    if let Some(why) = d["why"].as_str() {
        out += &format!("  why: {why}\n");
    }
    for c in d["checks"].as_array().into_iter().flatten() {
        out += &format!(
            "  {} {:<16} {:<20} {}\n",
            if c["ok"] == true { "ok  " } else { "FAIL" },
            c["step"].as_str().unwrap_or("?"),
            c["name"].as_str().unwrap_or("?"),
            c["detail"].as_str().unwrap_or("")
        );
    }
    let versions: Vec<String> = d["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .map(|v| v.to_string())
        .collect();
    if !versions.is_empty() {
        out += &format!(
            "  recovery reports: failover-monitor report VERSION for each of {}\n",
            versions.join(", ")
        );
    }
    if let Some(s) = d["last_success_at"].as_str() {
        out += &format!("  last success: {s}\n");
    }
    out
}
