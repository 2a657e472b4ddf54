//! `admin ...`: the operator's side of the admin API. Needs no valid config (see
//! `daemon`); prints the daemon's answer for a human, or as JSON.

use anyhow::bail;
use serde_json::{Value, json};

use super::args::{AdminArgs, AdminCommand, AdminMoveArgs};
use super::daemon::Session;
use super::daemon::{Endpoint, Needs};
use super::{Loaded, caller};
use crate::admin::client;

/// Runs one `admin` subcommand against the daemon the flags, the environment and
/// `config` point at.
pub async fn run(args: AdminArgs, config: Loaded) -> anyhow::Result<()> {
    let needs = match args.command {
        AdminCommand::Health => Needs::Nothing,
        AdminCommand::Status | AdminCommand::History { .. } => Needs::Read,
        _ => Needs::Admin,
    };
    // Who is acting, for the calls that record it (checked before anything is sent).
    let caller = match needs {
        Needs::Admin => caller::resolve(args.daemon.caller.as_deref())?,
        _ => String::new(),
    };
    let endpoint = Endpoint::resolve(&args.daemon, args.read_token_file, needs, &config);
    let session = endpoint.session(needs)?;
    let (answer, render): (_, fn(&Value) -> String) = match args.command {
        AdminCommand::Health => (session.get("/healthz").await?, |b| {
            b["status"].as_str().unwrap_or("?").to_string()
        }),
        AdminCommand::Status => (session.get("/v1/status").await?, client::render_status),
        AdminCommand::History { limit, before } => (
            session.get(&client::history_path(limit, before)).await?,
            client::render_history,
        ),
        AdminCommand::Failover(m) => (
            move_to("/v1/failover", m, &caller, &session).await?,
            client::render_move,
        ),
        AdminCommand::Failback(m) => (
            move_to("/v1/failback", m, &caller, &session).await?,
            client::render_move,
        ),
        AdminCommand::Fence { m, lasts } => (
            session
                .post(
                    "/v1/fence",
                    client::move_body(&m.reason, m.force, &caller, lasts),
                )
                .await?,
            client::render_move,
        ),
        AdminCommand::Pause { reason, .. } | AdminCommand::Resume { reason }
            if reason.as_deref() == Some("") =>
        {
            bail!("--reason must not be empty")
        }
        AdminCommand::Pause { reason, lasts } => {
            let mut body = json!({"reason": reason, "caller": caller});
            if let Some(d) = lasts {
                body["for"] = humantime::format_duration(d).to_string().into();
            }
            (session.post("/v1/pause", body).await?, |b| {
                format!("paused (was paused: {})", b["was_paused"])
            })
        }
        AdminCommand::Resume { reason } => (
            session
                .post("/v1/resume", json!({"reason": reason, "caller": caller}))
                .await?,
            |b| format!("resumed (was paused: {})", b["was_paused"]),
        ),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
        return session.check(&answer);
    }
    session.check(&answer)?;
    let out = render(&answer.body);
    println!("{}", out.trim_end());
    Ok(())
}

/// A move's request: the daemon checks the reason and applies its safety rules.
async fn move_to(
    path: &str,
    m: AdminMoveArgs,
    caller: &str,
    session: &Session,
) -> anyhow::Result<client::Answer> {
    session
        .post(path, client::move_body(&m.reason, m.force, caller, None))
        .await
}
