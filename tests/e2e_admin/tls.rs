//! The admin API over TLS: HTTPS with a self-signed certificate (the CLI trusting it
//! through the config or `--ca-file`), plain HTTP to that port getting nothing, a
//! renewed certificate served after SIGHUP; and the refusals that keep a token off the
//! network in cleartext: `run` without TLS on a non-loopback address, the CLI's
//! `http://` to another host. "Another host" is `[::ffff:127.0.0.1]` here, an address
//! the rules treat as not loopback (only `127.0.0.0/8` and `::1` are) that still
//! reaches this machine, so nothing leaves it even where a refusal were missing.

use std::process::Output;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::listener::{Cert, config, https_url, responder, wait_ready_https};
use support::emulator::Emulator;
use support::monitor::{Monitor, TOKEN, cli};
use support::{TempDir, free_port};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` to its end; fails the test when it still runs after 20 s (a `run` that
/// should have refused, a CLI waiting for an answer), killing it.
async fn output(cmd: std::process::Command) -> Output {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("still running after 20 s")
        .unwrap()
}

/// Mutations this test catches (each tried): TLS not served (the https calls fail),
/// the certificate not read again on SIGHUP (the renewed one is not served), a TLS
/// failure taken for "no daemon" (`state set --force` writes past it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_certificate_and_nothing_over_plain_http() {
    let emu = Emulator::start();
    let cert = Cert::self_signed(2048);
    let target = responder().await;
    let mon = Monitor::start(&config(&emu, target, &cert.admin_section("")));
    let http = cert.https();
    wait_ready_https(&mon, &http).await;
    let r = http
        .get(https_url(&mon, "/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // plain HTTP to the TLS port: no HTTP answer
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", mon.admin_port))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    the_cli_over_https(&mon, &cert, &http).await;

    // a renewed certificate at the same paths is served after SIGHUP
    let renewed = Cert::self_signed(2048);
    std::fs::copy(&renewed.cert, &cert.cert).unwrap();
    std::fs::copy(&renewed.key, &cert.key).unwrap();
    mon.signal("HUP");
    support::wait_for(
        Duration::from_secs(10),
        "the renewed certificate",
        async || match renewed
            .https()
            .get(https_url(&mon, "/healthz"))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

/// The CLI finds the daemon's address and certificate in the config, or takes
/// `--url` and `--ca-file`; without the certificate it fails, and a forced move does
/// not take that for an absent daemon.
async fn the_cli_over_https(mon: &Monitor, cert: &Cert, http: &reqwest::Client) {
    // the config's address is https:// and its certificate is trusted ...
    let listen = format!("127.0.0.1:{}", mon.admin_port);
    let out = cli(&mon.config)
        .args(["admin", "status"])
        .env("FAILOVER_MONITOR__ADMIN__LISTEN", &listen)
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("state     active"));
    // ... and with --url, --ca-file names it
    let url = format!("https://127.0.0.1:{}", mon.admin_port);
    let out = cli(&mon.config)
        .args(["admin", "health", "--url", &url, "--ca-file"])
        .arg(&cert.cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // without it, the system's roots do not know the certificate
    let out = cli(&mon.config)
        .args(["admin", "health", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // and a forced move does not take that for an absent daemon
    let out = cli(&mon.config)
        .args(["state", "set", "fenced", "--force", "--url", &url])
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("answered, but TLS failed"),
        "{}",
        stderr(&out)
    );
    let text = http
        .get(https_url(mon, "/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["state"], "active", "nothing was written");
}

/// Mutations this test catches (each tried): the daemon's cleartext rule removed
/// (`run` starts), the CLI's cleartext check removed (the token reaches the listener).
#[tokio::test]
async fn no_token_crosses_a_non_loopback_address_in_cleartext() {
    let dir = TempDir::new("cleartext");
    let path = dir.0.join("monitor.toml");
    std::fs::write(
        &path,
        "[app]\nid = \"x\"\n[regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:9\"\n\
         [regions.secondary]\nname = \"ap-northeast-1\"\nendpoint_url = \"http://127.0.0.1:9\"\n\
         [[probes]]\nname = \"c\"\nkind = \"dynamodb\"\nregion = \"primary\"\n",
    )
    .unwrap();
    // the daemon: a token, no TLS, an address other than loopback
    let listen = format!("[::ffff:127.0.0.1]:{}", free_port());
    for command in ["check-config", "run"] {
        let mut cmd = cli(&path);
        cmd.arg(command)
            .env("FAILOVER_MONITOR__ADMIN__LISTEN", &listen)
            .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "admin.listen = \"{listen}\" (from the environment variable \
                 FAILOVER_MONITOR__ADMIN__LISTEN): a non-loopback address without TLS \
                 would carry the tokens in cleartext"
            )),
            "{command}: {}",
            stderr(&out)
        );
    }

    // the CLI: nothing reaches the listener without --allow-cleartext-token
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://[::ffff:127.0.0.1]:{}",
        listener.local_addr().unwrap().port()
    );
    let mut cmd = cli(&path);
    cmd.args(["admin", "status", "--url", &url])
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN);
    let out = tokio::select! {
        out = output(cmd) => out,
        _ = listener.accept() => panic!("the CLI connected"),
    };
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("refusing to send a token to {url} in cleartext")),
        "{}",
        stderr(&out)
    );
    // with the flag, it goes (and carries the token)
    let mut child = tokio::process::Command::from(cli(&path))
        .args(["admin", "status", "--allow-cleartext-token", "--url", &url])
        .env("FAILOVER_MONITOR_ADMIN_TOKEN", TOKEN)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the CLI connects")
        .unwrap();
    let mut head = vec![0u8; 2048];
    let n = s.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("get /v1/status http/1.1"), "{head}");
    assert!(head.contains(&format!(
        "authorization: bearer {}",
        TOKEN.to_ascii_lowercase()
    )));
    drop(s);
    let _ = child.wait().await;
}
