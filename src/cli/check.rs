//! `check-config`: what `run` would do with a file that loads. The refusals are
//! exactly `run`'s (`config::for_run_with_env`: probes, the admin token, exposure;
//! then the admin API's certificate and key, read as `run` reads them).

use std::path::Path;

use failover_config::{self as config, ConfigError, Settings};
use failover_core::model::Role;

use crate::admin::tls::ServerTls;

/// The line `check-config` prints for `settings`, read from `path`, or the error
/// `run` would stop at (exit 2).
pub fn check_config(
    path: &Path,
    settings: Settings,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<String, ConfigError> {
    if settings.probes.is_empty() {
        return Ok(format!(
            "{}: ok for `provision`; no probes, so `run` would refuse it \
             (`provision monitor-config` writes them)",
            path.display()
        ));
    }
    let (settings, _) = config::for_run_with_env(settings, env)?;
    if let Some(files) = &settings.admin.tls {
        ServerTls::load(files)?;
    }
    let primary = settings
        .probes
        .iter()
        .filter(|p| p.region == Role::Primary)
        .count();
    let mut out = format!(
        "{}: ok ({} probes: {} primary, {} secondary; mode {}, failover when {})",
        path.display(),
        settings.probes.len(),
        primary,
        settings.probes.len() - primary,
        settings.monitor.mode.as_str(),
        settings.policy.failover_when,
    );
    if let Some(warning) = no_http_probe(&settings) {
        out.push_str("\nwarning: ");
        out.push_str(&warning);
    }
    Ok(out)
}

/// A primary watched only by probes that need credentials: a permission change
/// makes every one of them inconclusive, and an outage then would not be failed
/// over automatically (docs/REFERENCE.md, "What counts as evidence").
pub fn no_http_probe(settings: &Settings) -> Option<String> {
    let http = settings
        .probes
        .iter()
        .any(|p| p.region == Role::Primary && p.kind() == "http");
    (!http).then(|| {
        "no http probe watches the primary: every other kind needs the monitor's \
         credentials, so after a permission change every primary probe is inconclusive \
         and an outage is not failed over on its own; add an http probe of the \
         application (its state API needs no credentials)"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[app]\nid = \"x\"\n[regions.primary]\nname = \"us-east-1\"\n\
                        [regions.secondary]\nname = \"ap-northeast-1\"\n";
    const PROBES: &str = "[[probes]]\nname = \"p\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
                          [[probes]]\nname = \"s\"\nkind = \"dynamodb\"\nregion = \"secondary\"\n";

    fn check(text: &str, env: &[(&str, &str)]) -> Result<String, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let settings = config::parse(text, Vec::<(String, String)>::new()).unwrap();
        check_config(Path::new("m.toml"), settings, env)
    }

    #[test]
    fn says_what_run_would_do() {
        let ok = check(&format!("{BASE}{PROBES}"), &[]).unwrap();
        assert_eq!(
            ok.lines().next().unwrap(),
            "m.toml: ok (2 probes: 1 primary, 1 secondary; mode auto, failover when majority)"
        );
        assert!(
            ok.contains("warning: no http probe watches the primary"),
            "{ok}"
        );
        let http = "[[probes]]\nname = \"h\"\nkind = \"http\"\nregion = \"primary\"\n\
                    url = \"https://api.example.com/state\"\n";
        let ok = check(&format!("{BASE}{PROBES}{http}"), &[]).unwrap();
        assert!(!ok.contains("warning"), "{ok}");
        let no_probes = check(BASE, &[]).unwrap();
        assert!(no_probes.contains("`run` would refuse it"), "{no_probes}");
        // what run refuses, check-config refuses: an exposed admin API without a token
        let exposed = format!("{BASE}{PROBES}[admin]\nlisten = \"0.0.0.0:9464\"\n");
        let err = check(&exposed, &[]).unwrap_err().to_string();
        assert!(
            err.contains("a non-loopback address needs an admin token"),
            "{err}"
        );
        let token = [("FAILOVER_MONITOR_ADMIN_TOKEN", "0123456789abcdef-token")];
        let err = check(&exposed, &token).unwrap_err().to_string();
        assert!(err.contains("without TLS would carry the tokens"), "{err}");
        let sidecar = format!("{exposed}allow_cleartext_token = true\n");
        assert!(check(&sidecar, &token).is_ok());
        // the certificate is read as `run` reads it
        let missing = format!(
            "{BASE}{PROBES}[admin]\ntls_cert_file = \"/nonexistent/c.pem\"\n\
             tls_key_file = \"/nonexistent/k.pem\"\n"
        );
        let err = check(&missing, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("admin.tls_cert_file = \"/nonexistent/c.pem\": cannot be read"),
            "{err}"
        );
    }
}
