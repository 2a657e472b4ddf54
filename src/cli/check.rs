//! `check-config`: what `run` would do with a file that loads. The refusals are
//! exactly `run`'s (`config::for_run_with_env`: probes, the admin token, exposure).

use std::path::Path;

use failover_config::{self as config, ConfigError, Settings};
use failover_core::model::Role;

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
    let primary = settings
        .probes
        .iter()
        .filter(|p| p.region == Role::Primary)
        .count();
    Ok(format!(
        "{}: ok ({} probes: {} primary, {} secondary; mode {}, failover when {})",
        path.display(),
        settings.probes.len(),
        primary,
        settings.probes.len() - primary,
        settings.monitor.mode.as_str(),
        settings.policy.failover_when,
    ))
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
            ok,
            "m.toml: ok (2 probes: 1 primary, 1 secondary; mode auto, failover when majority)"
        );
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
        assert!(check(&exposed, &token).is_ok());
    }
}
