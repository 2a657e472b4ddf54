//! `state ...`: the config item and its audit records. `get` and `history` read
//! DynamoDB directly (they need the config). `set` and `switch` are moves, and a move
//! goes through the same checks as `admin failover|failback|fence`: when a daemon
//! answers (at `--url` or `admin.listen`), through its admin API and its safety rules;
//! when none does, it is refused, unless `--force` writes the item directly (audited
//! as forced, its evidence saying that no monitor checked the regions).

use anyhow::{Context, bail};
use serde_json::json;

use super::args::{StateCommand, StateMoveArgs};
use super::daemon::{Endpoint, Needs, Session};
use super::{Loaded, caller};
use crate::admin::client;
use failover_config::Settings;
use failover_core::model::{AppState, Role, Trigger};
use failover_daemon::action::{Actuator, Outcome, PrimaryCopy, SyncAction, Transition};
use failover_daemon::backend::AwsBackend;

/// Runs one `state` subcommand.
pub async fn run(command: StateCommand, config: Loaded) -> anyhow::Result<()> {
    match command {
        StateCommand::Get { json } => get(&config.require()?, json).await,
        StateCommand::History {
            limit,
            before,
            json,
        } => history(&config.require()?, limit, before, json).await,
        StateCommand::Set {
            state,
            reason,
            lasts,
            how,
        } => {
            let to = AppState::from(state);
            if lasts.is_some() && to != AppState::Fenced {
                bail!("--for: only a fence ends by itself, not a move to {to}");
            }
            make_move(Some(to), reason, lasts, how, config).await
        }
        StateCommand::Switch { reason, how } => make_move(None, reason, None, how, config).await,
    }
}

async fn actuator(settings: &Settings) -> Actuator {
    AwsBackend::load(settings).await.actuator(settings)
}

async fn get(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let report = actuator(settings).await.sync(false).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (role, read) in [
            (Role::Primary, &report.primary),
            (Role::Secondary, &report.secondary),
        ] {
            match read {
                Ok(Some(i)) => println!(
                    "{role:<9} {:<8} version {:<4} updated {} by {}",
                    i.state,
                    i.version,
                    i.updated_at.as_deref().unwrap_or("-"),
                    i.updated_by.as_deref().unwrap_or("-")
                ),
                Ok(None) => println!("{role:<9} (no config item)"),
                Err(e) => println!("{role:<9} unreadable: {e}"),
            }
        }
        if report.action != SyncAction::None {
            println!("sync: {}", serde_json::to_string(&report.action)?);
        }
    }
    if report.item().is_none() {
        bail!("no region returned the config item");
    }
    Ok(())
}

async fn history(
    settings: &Settings,
    limit: usize,
    before: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let page = actuator(settings)
        .await
        .history(limit, before)
        .await
        .context("reading the audit records")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page.records)?);
        if let Some(next) = page.next_before {
            eprintln!("older records: --before {next}");
        }
        return Ok(());
    }
    // The same lines as `admin history`, from the same JSON the daemon would send.
    let body = json!({"records": page.records, "next_before": page.next_before});
    print!("{}", client::render_history(&body));
    Ok(())
}

/// `set` (`to` given) or `switch` (`to` is the other side of the current state).
async fn make_move(
    to: Option<AppState>,
    reason: String,
    lasts: Option<std::time::Duration>,
    how: StateMoveArgs,
    config: Loaded,
) -> anyhow::Result<()> {
    let caller = caller::resolve(how.daemon.caller.as_deref())?;
    let endpoint = Endpoint::resolve(&how.daemon, None, Needs::Admin, &config);
    match endpoint.answers().await? {
        Ok(()) => {
            let asked = Asked {
                reason: &reason,
                force: how.force,
                caller: &caller,
                lasts,
            };
            through_daemon(to, asked, &endpoint).await
        }
        Err(why) if how.force => {
            let settings = config.require()?;
            println!(
                "no monitor answered at {} ({why}): writing the config item directly, \
                 unchecked (--force; audited as forced)",
                endpoint.base
            );
            let evidence = json!({
                "source": "cli",
                "monitor": format!("none answered at {} ({why})", endpoint.base),
                "checked": "no monitor checked the regions before this move",
            });
            let lasts = match to {
                Some(AppState::Fenced) => Some(lasts.unwrap_or(settings.monitor.max_override)),
                _ => None,
            };
            let t = Plan {
                to,
                reason,
                by: format!("cli:{caller}"),
                evidence,
                lasts,
            };
            directly(t, &settings).await
        }
        Err(why) => bail!(
            "no monitor answered at {} ({why}), so nothing can check the regions: the \
             move was not made.\nStart the monitor, or point --url at the one that runs \
             (its safety rules then apply); or repeat with --force to write the config \
             item directly, unchecked (audited as forced)",
            endpoint.base
        ),
    }
}

/// The admin API path of a move to `to`.
fn move_path(to: AppState) -> &'static str {
    match to {
        AppState::Active => "/v1/failback",
        AppState::Fenced => "/v1/fence",
        AppState::Failover => "/v1/failover",
    }
}

/// `switch`: the other side of `current`; fenced has two, so it is refused.
fn toggled(current: AppState) -> anyhow::Result<AppState> {
    match current {
        AppState::Active => Ok(AppState::Failover),
        AppState::Failover => Ok(AppState::Active),
        AppState::Fenced => {
            bail!("the state is fenced: say which state comes next with `state set`")
        }
    }
}

/// The move through the running daemon's admin API: its safety rules apply (`force`
/// overrides them); printed as `admin failover|failback|fence` print it.
/// What a human asked of a move through the daemon.
struct Asked<'a> {
    reason: &'a str,
    force: bool,
    caller: &'a str,
    /// A fence: how long it lasts.
    lasts: Option<std::time::Duration>,
}

async fn through_daemon(
    to: Option<AppState>,
    asked: Asked<'_>,
    endpoint: &Endpoint,
) -> anyhow::Result<()> {
    let Asked {
        reason,
        force,
        caller,
        lasts,
    } = asked;
    println!(
        "through the monitor at {}: {}",
        endpoint.base,
        if force {
            "its safety rules overridden (--force; audited as forced)"
        } else {
            "its safety rules apply"
        }
    );
    let session = endpoint.session(Needs::Admin)?;
    let to = match to {
        Some(to) => to,
        None => toggled(current_state(&session).await?)?,
    };
    let answer = session
        .post(
            move_path(to),
            client::move_body(reason, force, caller, lasts),
        )
        .await?;
    session.check(&answer)?;
    println!("{}", client::render_move(&answer.body));
    Ok(())
}

/// The state the daemon last read (`GET /v1/status`, with the admin token).
async fn current_state(session: &Session) -> anyhow::Result<AppState> {
    let answer = session.get("/v1/status").await?;
    session.check(&answer)?;
    match serde_json::from_value::<Option<AppState>>(answer.body["state"].clone()) {
        Ok(Some(state)) => Ok(state),
        _ => bail!("the monitor has not read the config item yet: try again in a moment"),
    }
}

/// A forced move without a daemon, before the current item is known.
struct Plan {
    to: Option<AppState>,
    reason: String,
    by: String,
    evidence: serde_json::Value,
    /// A fence: how long it lasts.
    lasts: Option<std::time::Duration>,
}

/// Writes the move with the actuator itself, unchecked: versioned, audited as forced.
async fn directly(plan: Plan, settings: &Settings) -> anyhow::Result<()> {
    let actuator = actuator(settings).await;
    let current = actuator
        .current()
        .await
        .context("reading the config item from the secondary region (the commit point)")?;
    let to = match plan.to {
        Some(to) => to,
        None => toggled(current.state)?,
    };
    if current.state == to {
        bail!(
            "the state is already {to} (version {}): nothing to do",
            current.version
        );
    }
    let t = Transition {
        from: current.state,
        to,
        expected_version: current.version,
        from_at: current.updated_at.clone(),
        reason: plan.reason,
        evidence: plan.evidence,
        trigger: Trigger::Manual,
        by: plan.by,
        forced: true,
        fence: None,
        lasts: plan.lasts.filter(|_| to == AppState::Fenced),
    };
    match actuator.transition(&t).await? {
        Outcome::Committed { item, primary, .. } => {
            println!(
                "{} -> {} (version {}) committed in the secondary",
                t.from, t.to, item.version
            );
            match primary {
                PrimaryCopy::Written => println!("primary updated"),
                PrimaryCopy::Replicates => {
                    println!("global table: replication carries it to the primary")
                }
                PrimaryCopy::Pending { error } => println!(
                    "primary not updated yet ({error}); a running monitor will catch it up"
                ),
            }
            Ok(())
        }
        Outcome::NeedsHuman { reason } => bail!("{reason}"),
        Outcome::Deposed => bail!("refused by the lease check; nothing was written"),
        Outcome::LostRace { current } => bail!(
            "lost the race: the item changed meanwhile (now {}); nothing was written",
            current.map_or("unknown".into(), |i| format!(
                "{} version {}",
                i.state, i.version
            ))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_map_to_the_admin_routes_and_switch_toggles() {
        assert_eq!(move_path(AppState::Active), "/v1/failback");
        assert_eq!(move_path(AppState::Failover), "/v1/failover");
        assert_eq!(move_path(AppState::Fenced), "/v1/fence");
        assert_eq!(toggled(AppState::Active).unwrap(), AppState::Failover);
        assert_eq!(toggled(AppState::Failover).unwrap(), AppState::Active);
        let err = toggled(AppState::Fenced).unwrap_err().to_string();
        assert!(err.contains("say which state comes next"), "{err}");
    }
}
