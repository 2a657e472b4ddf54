//! Process wiring for `failover-monitor run`: the admin listener (on a thread of its
//! own, see [`crate::admin::server`]), the AWS backend, the daemon, signals
//! (SIGTERM/SIGINT stop, SIGHUP reloads the config and the admin API's certificate)
//! and systemd notifications. The decision loop itself is [`failover_daemon`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::admin::tls::ServerTls;
use crate::admin::{self, AdminState, Server};
use failover_config::{self as config, Settings};
use failover_daemon::Daemon;
use failover_daemon::backend::AwsBackend;
use failover_daemon::control::{Handle, Request};
use failover_daemon::metrics::Metrics;
use failover_daemon::notify;
use failover_daemon::probe::limits;

/// The `run` command: admin server, signals, systemd notifications, and the
/// decision loop, until SIGTERM or SIGINT.
///
/// Errors that are the configuration's fault come back as [`ConfigError`](config::ConfigError).
pub async fn run(config_path: PathBuf, settings: Settings) -> anyhow::Result<()> {
    let (settings, tokens) = config::for_run_with_env(settings, std::env::vars())?;
    let (listen, limits) = (settings.admin.listen, settings.admin.limits);
    let tls = match &settings.admin.tls {
        Some(files) => Some(Arc::new(ServerTls::load(files)?)),
        None => None,
    };
    if let Some((limit, need)) = limits::this_process_too_low(settings.probes.len()) {
        warn!(
            limit,
            need,
            probes = settings.probes.len(),
            "the limit on open files is below one per probe plus {}: a connect beyond it \
             fails (an error about the monitor, not evidence); raise it (LimitNOFILE in \
             the systemd unit, ulimits in the ECS task definition)",
            limits::SPARE_FILES
        );
    }
    let metrics = Arc::new(Metrics::new());
    metrics.config_reload_ok.set(1);
    metrics.config_reload_time.set(unix_now());
    let drill_schedule = serde_json::to_value(&settings.drills).unwrap_or_default();
    let backend = AwsBackend::load(&settings).await;
    // The readiness check compares the secondary's half of the stack with what
    // `provision` wants; the daemon never provisions, so that part comes from here.
    #[cfg(feature = "provision")]
    let backend = backend.with_stack_readiness(crate::readiness::stack_part());
    let backend = Arc::new(backend);
    let (daemon, handle) = Daemon::new(settings, backend, metrics.clone())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the admin server to {listen}"))?;
    info!(
        listen = %listener.local_addr()?,
        tls = tls.is_some(),
        token = tokens.admin.is_some(),
        read_token = tokens.read.is_some(),
        max_connections = limits.max_connections,
        "admin server listening"
    );
    let admin_state = Arc::new(AdminState {
        handle: handle.clone(),
        metrics: metrics.clone(),
        actuator: daemon.actuator(),
        tokens,
        aws: tokio::runtime::Handle::current(),
        drill_schedule,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = Server {
        listener,
        router: admin::router(admin_state),
        tls: tls.clone(),
        limits,
    };
    let admin_done = admin::server::spawn(server, stopped(stop_rx.clone()))
        .context("starting the admin server's thread")?;
    let signal_task = tokio::spawn(signals(config_path, handle, metrics, tls, stop_tx));
    notify::notify("READY=1");
    daemon.run(stopped(stop_rx)).await;
    notify::notify("STOPPING=1");
    signal_task.abort();
    match admin_done.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).context("admin server"),
        Err(_) => Err(anyhow::anyhow!(
            "the admin server's thread ended without a word"
        )),
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
    tls: Option<Arc<ServerTls>>,
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
            _ = hup.recv() => reload(&config_path, &handle, &metrics, tls.as_deref()).await,
        }
    }
    let _ = stop.send(true);
}

/// Loads and validates the config file again; a bad one keeps the running config.
/// The admin API's certificate and key are read again from the paths it started
/// with (`[admin]` changes wait for a restart); bad files keep the ones in use. Either
/// failure sets `config_last_reload_successful` to 0.
async fn reload(path: &Path, handle: &Handle, metrics: &Metrics, tls: Option<&ServerTls>) {
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
    let mut ok = match result {
        Ok(()) => {
            info!(path = %path.display(), "config reloaded");
            true
        }
        Err(e) => {
            error!(path = %path.display(), error = %e, "config reload failed; keeping the running config");
            false
        }
    };
    match tls.map(ServerTls::reload) {
        Some(Ok(())) => info!("admin API certificate reloaded"),
        Some(Err(e)) => {
            error!(error = %e, "admin API certificate reload failed; keeping the one in use");
            ok = false;
        }
        None => {}
    }
    metrics.config_reload_ok.set(i64::from(ok));
    if ok {
        metrics.config_reload_time.set(unix_now());
    }
    notify::notify("READY=1");
}
