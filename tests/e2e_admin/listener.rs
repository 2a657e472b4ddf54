//! What the admin listener's tests share: a self-signed certificate (made with the
//! `openssl` command line, which Debian ships; no crate in the lock makes one), an
//! HTTPS client that trusts it, a monitor with about twenty fast probes against a
//! trivial local HTTP server, and what the tests read of the process: its open file
//! descriptors and the probes' schedule-lag histogram.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use support::TempDir;
use support::emulator::Emulator;
use support::monitor::{Monitor, TOKEN};
use support::wait_for;

/// A self-signed certificate for `127.0.0.1` and `localhost`, and its key.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

impl Cert {
    /// An RSA key of `bits` bits: the bigger, the more a handshake costs the server.
    pub fn self_signed(bits: u32) -> Self {
        let dir = TempDir::new("tls");
        let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "2"])
            .args(["-newkey", &format!("rsa:{bits}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", "/CN=failover-monitor-test"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            // an end-entity certificate: rustls refuses a CA certificate as a server's
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .output()
            .expect("the openssl command line (Debian: apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            cert,
            key,
            _dir: dir,
        }
    }

    /// `[admin]` serving HTTPS with this certificate, and `extra` keys.
    pub fn admin_section(&self, extra: &str) -> String {
        format!(
            "[admin]\ntls_cert_file = {:?}\ntls_key_file = {:?}\n{extra}\n",
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }

    /// An HTTPS client that trusts this certificate only.
    pub fn https(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.cert).unwrap();
        reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    /// A TLS connector that trusts this certificate and never resumes a session, so
    /// that every handshake is a full one (the server signs each).
    pub fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.cert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.resumption = Resumption::disabled();
        TlsConnector::from(Arc::new(config))
    }
}

/// How many probes the monitor runs, and how often.
pub const PROBES: usize = 20;

/// A loopback HTTP server that answers every request `200 ok` and closes: what the
/// probes probe, costing next to nothing. Returns its port.
pub async fn responder() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

/// A monitor.toml: the emulator's regions, [`PROBES`] http probes every 100 ms on
/// `target` (half of them "primary", half "secondary"), and `admin`.
pub fn config(emu: &Emulator, target: u16, admin: &str) -> String {
    let mut probes = String::new();
    for i in 0..PROBES {
        let region = if i % 2 == 0 { "primary" } else { "secondary" };
        probes.push_str(&format!(
            "[[probes]]\nname = \"fast-{i}\"\nkind = \"http\"\nregion = \"{region}\"\n\
             url = \"http://127.0.0.1:{target}/\"\n"
        ));
    }
    emu.config(&format!(
        "[monitor]\ninstance_id = \"mon-flood\"\nstate_refresh = \"500ms\"\n\
         [probe_defaults]\ninterval = \"100ms\"\ntimeout = \"80ms\"\njitter = \"10ms\"\n\
         fall = 3\nrise = 2\n{admin}\n{probes}"
    ))
}

/// The https:// URL of `path` on the monitor's admin port.
pub fn https_url(mon: &Monitor, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", mon.admin_port)
}

/// Waits until the monitor answers `/readyz` over HTTPS.
pub async fn wait_ready_https(mon: &Monitor, http: &reqwest::Client) {
    wait_for(
        Duration::from_secs(30),
        "ready over https",
        async || match http.get(https_url(mon, "/readyz")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(format!("{}; log:\n{}", r.status(), mon.log_tail(20))),
            Err(e) => Err(format!("{e}; log:\n{}", mon.log_tail(20))),
        },
    )
    .await;
}

/// The process id of the monitor: the process whose command line names its config.
pub fn pid_of(mon: &Monitor) -> u32 {
    let config = mon.config.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&config.as_bytes()) && args.contains(&&b"run"[..]) {
            return pid;
        }
    }
    panic!("no process runs with {config}");
}

/// How many file descriptors the process has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The soft limit on open files of this process (`/proc/self/limits`).
pub fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// The schedule-lag histogram's cumulative buckets: (upper bound, count), `+Inf` last.
pub type Lag = Vec<(f64, f64)>;

/// The schedule-lag histogram, read over HTTPS.
pub async fn lag(mon: &Monitor, http: &reqwest::Client) -> Lag {
    let text = wait_for(Duration::from_secs(10), "GET /metrics", async || {
        let r = http
            .get(https_url(mon, "/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        r.text().await.map_err(|e| e.to_string())
    })
    .await;
    let prefix = "failover_monitor_probe_schedule_lag_seconds_bucket{le=\"";
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// Between two readings: how many runs were observed, and how many of them above
/// each bucket's bound.
pub fn lag_between(before: &Lag, after: &Lag) -> (f64, Vec<(f64, f64)>) {
    let total = |l: &Lag| l.last().map_or(0.0, |(_, c)| *c);
    let runs = total(after) - total(before);
    let above = after
        .iter()
        .zip(before)
        .map(|((le, a), (_, b))| (*le, runs - (a - b)))
        .collect();
    (runs, above)
}
