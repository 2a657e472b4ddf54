//! Process wiring for `failover-monitor run`: the admin listener, the AWS backend,
//! the daemon, signals (SIGTERM/SIGINT stop, SIGHUP reloads) and systemd
//! notifications. The decision loop itself is [`crate::daemon`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{error, info};

use crate::admin::{self, AdminState};
use failover_config::{self as config, Settings};
use failover_daemon::Daemon;
use failover_daemon::backend::AwsBackend;
use failover_daemon::control::{Handle, Request};
use failover_daemon::metrics::Metrics;
use failover_daemon::notify;

/// The `run` command: admin server, signals, systemd notifications, and the
/// decision loop, until SIGTERM or SIGINT.
///
/// Errors that are the configuration's fault come back as [`ConfigError`](config::ConfigError).
pub async fn run(config_path: PathBuf, settings: Settings) -> anyhow::Result<()> {
    let (settings, tokens) = config::for_run_with_env(settings, std::env::vars())?;
    let listen = settings.admin.listen;
    let metrics = Arc::new(Metrics::new());
    metrics.config_reload_ok.set(1);
    metrics.config_reload_time.set(unix_now());
    let backend = Arc::new(AwsBackend::load(&settings).await);
    let (daemon, handle) = Daemon::new(settings, backend, metrics.clone())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the admin server to {listen}"))?;
    info!(
        listen = %listener.local_addr()?,
        token = tokens.admin.is_some(),
        read_token = tokens.read.is_some(),
        "admin server listening"
    );
    let admin_state = Arc::new(AdminState {
        handle: handle.clone(),
        metrics: metrics.clone(),
        actuator: daemon.actuator(),
        tokens,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(admin::serve(
        listener,
        admin::router(admin_state),
        stopped(stop_rx.clone()),
    ));
    let signal_task = tokio::spawn(signals(config_path, handle, metrics, stop_tx));
    notify::notify("READY=1");
    daemon.run(stopped(stop_rx)).await;
    notify::notify("STOPPING=1");
    signal_task.abort();
    match admin_task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).context("admin server"),
        Err(e) => Err(e).context("admin server task"),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn signals(
    config_path: PathBuf,
    handle: Handle,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stopping");
        let _ = stop.send(true);
        return;
    };
    loop {
        tokio::select! {
            biased;
            _ = term.recv() => { info!("SIGTERM: finishing the write in flight, then exiting"); break }
            _ = int.recv() => { info!("SIGINT: finishing the write in flight, then exiting"); break }
            _ = hup.recv() => reload(&config_path, &handle, &metrics).await,
        }
    }
    let _ = stop.send(true);
}

/// Loads and validates the config file again; a bad one keeps the running config.
async fn reload(path: &Path, handle: &Handle, metrics: &Metrics) {
    notify::notify("RELOADING=1");
    let result = match config::load(path).and_then(config::for_run) {
        Err(e) => Err(e.to_string()),
        Ok(settings) => handle
            .ask(|reply| Request::Reload {
                settings: Box::new(settings),
                reply,
            })
            .await
            .unwrap_or_else(|| Err("the daemon is stopping".into())),
    };
    match result {
        Ok(()) => {
            metrics.config_reload_ok.set(1);
            metrics.config_reload_time.set(unix_now());
            info!(path = %path.display(), "config reloaded");
        }
        Err(e) => {
            metrics.config_reload_ok.set(0);
            error!(path = %path.display(), error = %e, "config reload failed; keeping the running config");
        }
    }
    notify::notify("READY=1");
}
