//! Who is acting: the name a human's move is recorded under (`by` of the audit record,
//! `updatedBy` of the item: `cli:<name>` when the CLI writes, `admin:<name>` through
//! the daemon). Never a silent "unknown": containers and systemd units often run
//! without `$USER`, so the system's own answer (the process's uid and its name in
//! `/etc/passwd`) comes last.

use super::UsageError;

/// The environment variable naming the caller (after `--caller`).
pub const CALLER_ENV: &str = "FAILOVER_MONITOR_CALLER";
/// Longest caller name the admin API takes.
const MAX_LEN: usize = 64;

/// The caller: `--caller`, else [`CALLER_ENV`], else `SUDO_USER`, else `USER`, else
/// the OS user.
pub fn resolve(flag: Option<&str>) -> Result<String, UsageError> {
    resolve_with(flag, |name| std::env::var(name).ok(), system_user)
}

/// [`resolve`] with the environment and the system as arguments. A name the operator
/// chose (`--caller`, [`CALLER_ENV`]) must already be valid; one from the login or
/// the system is made valid (other characters become `_`).
pub fn resolve_with(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    system: impl FnOnce() -> Result<String, String>,
) -> Result<String, UsageError> {
    let chosen = flag
        .map(|f| ("--caller", f.to_owned()))
        .or_else(|| env(CALLER_ENV).map(|v| (CALLER_ENV, v)));
    if let Some((from, name)) = chosen {
        return if valid(&name) {
            Ok(name)
        } else {
            Err(UsageError(format!(
                "{from} = {name:?}: expected 1 to {MAX_LEN} characters of a-z, A-Z, 0-9, \
                 '-', '_', '.', '@'"
            )))
        };
    }
    let login = ["SUDO_USER", "USER"]
        .into_iter()
        .filter_map(&env)
        .find(|v| !v.trim().is_empty());
    let name = match login {
        Some(name) => name,
        None => system().map_err(|why| {
            UsageError(format!(
                "cannot tell who is acting ({why}): pass --caller NAME or set {CALLER_ENV}"
            ))
        })?,
    };
    Ok(sanitize(&name))
}

fn valid(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_LEN && name.bytes().all(allowed)
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.@".contains(&b)
}

fn sanitize(name: &str) -> String {
    name.trim()
        .bytes()
        .take(MAX_LEN)
        .map(|b| if allowed(b) { char::from(b) } else { '_' })
        .collect()
}

/// The name of `uid` in a passwd file's text, or `uid-<n>` when it has none.
pub fn user_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut fields = l.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (id == uid && !name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("uid-{uid}"))
}

/// The real uid of this process, from `/proc/self/status` (Linux).
fn real_uid() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status cannot be read: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| "/proc/self/status names no uid".to_owned())
}

fn system_user() -> Result<String, String> {
    let uid = real_uid()?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Ok(user_of(&passwd, uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn no_system() -> Result<String, String> {
        Err("no system".into())
    }

    #[test]
    fn the_flag_then_the_variable_then_the_login_then_the_system() {
        let all = env(&[
            (CALLER_ENV, "from-env"),
            ("SUDO_USER", "sudoer"),
            ("USER", "user"),
        ]);
        assert_eq!(resolve_with(Some("ana"), &all, no_system).unwrap(), "ana");
        assert_eq!(resolve_with(None, &all, no_system).unwrap(), "from-env");
        let login = env(&[("SUDO_USER", "sudoer"), ("USER", "user")]);
        assert_eq!(resolve_with(None, &login, no_system).unwrap(), "sudoer");
        let user = env(&[("SUDO_USER", ""), ("USER", "user")]);
        assert_eq!(resolve_with(None, &user, no_system).unwrap(), "user");
        let none = env(&[]);
        let system = || Ok("svc-monitor".to_owned());
        assert_eq!(resolve_with(None, &none, system).unwrap(), "svc-monitor");
        // nowhere to learn it from: an error that says what to set, never "unknown"
        let err = resolve_with(None, &none, no_system).unwrap_err().0;
        assert!(
            err.contains("--caller NAME") && err.contains(CALLER_ENV),
            "{err}"
        );
    }

    #[test]
    fn chosen_names_are_checked_and_login_names_made_valid() {
        let none = env(&[]);
        for bad in ["", "a b", "ünï", &"x".repeat(65)] {
            let err = resolve_with(Some(bad), &none, no_system).unwrap_err().0;
            assert!(err.starts_with("--caller = "), "{err}");
        }
        let bad_env = env(&[(CALLER_ENV, "a/b")]);
        let err = resolve_with(None, &bad_env, no_system).unwrap_err().0;
        assert!(err.starts_with(CALLER_ENV), "{err}");
        let odd = env(&[("USER", "CORP\\ana smith")]);
        assert_eq!(
            resolve_with(None, &odd, no_system).unwrap(),
            "CORP_ana_smith"
        );
    }

    #[test]
    fn the_uid_is_named_from_passwd_or_by_number() {
        let passwd = "# comment\nroot:x:0:0:root:/root:/bin/bash\n\
                      monitor:x:998:998::/var/lib/monitor:/usr/sbin/nologin\n";
        assert_eq!(user_of(passwd, 0), "root");
        assert_eq!(user_of(passwd, 998), "monitor");
        assert_eq!(user_of(passwd, 61234), "uid-61234");
        assert_eq!(user_of("", 5), "uid-5");
        // this process has an answer too, and it is never "unknown"
        let me = system_user().unwrap();
        assert!(valid(&sanitize(&me)) && me != "unknown", "{me}");
    }
}
