//! How the CLI reaches a running daemon's admin API: its address and the tokens to
//! send, from the flags, the environment and the config when it loaded. A command that
//! talks to the daemon does not need a valid config: without one, `--url` or the
//! default address and the tokens of the environment and the flags are used, and a
//! note on stderr says once that the config was not read, when that matters.

use std::path::PathBuf;
use std::time::Duration;

use super::Loaded;
use super::args::DaemonArgs;
use crate::admin::client::{self, Answer, Client, Sent, TokenSource, Transport};
use failover_config::tokens::{self, Token, TokenKind};
use failover_config::{ConfigError, defaults};

/// How long the CLI waits for `GET /healthz` when it asks whether a daemon runs.
const HEALTH_WAIT: Duration = Duration::from_secs(3);

/// What a command needs the daemon to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Only an answer (`/healthz`).
    Nothing,
    /// The reads: the read-only token, else the admin token.
    Read,
    /// The changes: the admin token.
    Admin,
}

/// A running daemon as the CLI reaches it.
#[derive(Debug)]
pub struct Endpoint {
    /// The admin API's base URL.
    pub base: String,
    /// Where each token's file is, if anywhere (a flag wins over the config).
    admin_file: Option<TokenSource>,
    read_file: Option<TokenSource>,
    /// The certificates trusted for HTTPS, and whether a token may go in cleartext.
    pub transport: Transport,
}

/// The default base URL: `admin.listen`'s default.
fn default_base() -> String {
    defaults::ADMIN_LISTEN
        .parse()
        .map(|listen| client::base_url(listen, false))
        .unwrap_or_else(|_| format!("http://{}", defaults::ADMIN_LISTEN))
}

impl Endpoint {
    /// From `args`, the read-only token's flag, the environment and `config`; prints
    /// the note about an unread config on stderr when it matters.
    pub fn resolve(
        args: &DaemonArgs,
        read_token_file: Option<PathBuf>,
        needs: Needs,
        config: &Loaded,
    ) -> Self {
        let (endpoint, note) = Self::resolve_with(args, read_token_file, needs, config, |v| {
            std::env::var_os(v).is_some()
        });
        if let Some(note) = note {
            eprintln!("failover-monitor: {note}");
        }
        endpoint
    }

    /// [`Endpoint::resolve`] with the environment as `env_set` (whether a variable is
    /// set); returns the note instead of printing it.
    pub fn resolve_with(
        args: &DaemonArgs,
        read_token_file: Option<PathBuf>,
        needs: Needs,
        config: &Loaded,
        env_set: impl Fn(&str) -> bool,
    ) -> (Self, Option<String>) {
        let settings = config.settings();
        let file = |kind: TokenKind, flag: &'static str, given: Option<PathBuf>| match given {
            Some(path) => Some(TokenSource::Flag(flag, path)),
            None => {
                let admin = &settings?.admin;
                let path = match kind {
                    TokenKind::Admin => admin.token_file.clone(),
                    TokenKind::Read => admin.read_token_file.clone(),
                };
                path.map(|p| TokenSource::Config(kind.key(), p))
            }
        };
        // The config's address comes with its certificate: a self-signed one is its
        // own CA.
        let from_config = settings.filter(|_| args.url.is_none());
        let ca_file = match (
            &args.ca_file,
            from_config.and_then(|s| s.admin.tls.as_ref()),
        ) {
            (Some(path), _) => Some((path.clone(), "--ca-file")),
            (None, Some(tls)) => Some((tls.cert_file.clone(), "admin.tls_cert_file")),
            (None, None) => None,
        };
        let endpoint = Endpoint {
            base: args
                .url
                .clone()
                .or_else(|| {
                    from_config.map(|s| client::base_url(s.admin.listen, s.admin.tls.is_some()))
                })
                .unwrap_or_else(default_base),
            admin_file: file(TokenKind::Admin, "--token-file", args.token_file.clone()),
            read_file: file(TokenKind::Read, "--read-token-file", read_token_file),
            transport: Transport {
                ca_file,
                allow_cleartext_token: args.allow_cleartext_token,
            },
        };
        // The config would have mattered if it had to give the address or a token.
        let given = |kind: TokenKind| {
            env_set(kind.env())
                || match kind {
                    TokenKind::Admin => matches!(endpoint.admin_file, Some(TokenSource::Flag(..))),
                    TokenKind::Read => matches!(endpoint.read_file, Some(TokenSource::Flag(..))),
                }
        };
        let token_given = match needs {
            Needs::Nothing => true,
            Needs::Read => given(TokenKind::Read) || given(TokenKind::Admin),
            Needs::Admin => given(TokenKind::Admin),
        };
        let note = config
            .unread()
            .filter(|_| args.url.is_none() || !token_given)
            .map(|e| {
                let why = match e {
                    ConfigError::NotFound { looked_for, .. } => {
                        format!("{} does not exist", looked_for.display())
                    }
                    other => other.to_string(),
                };
                format!(
                    "the config was not read ({why}); using {} and the tokens of the \
                     environment and the flags",
                    endpoint.base
                )
            });
        (endpoint, note)
    }

    /// The token of `kind` and where it came from: its environment variable, else the
    /// file of its flag or of the config.
    fn token(&self, kind: TokenKind) -> Result<Option<(Token, Sent)>, ConfigError> {
        let env = std::env::var(kind.env()).ok();
        let place = match kind {
            TokenKind::Admin => &self.admin_file,
            TokenKind::Read => &self.read_file,
        };
        let (from, path) = match (&env, place) {
            (Some(_), _) => (TokenSource::Env(kind.env()), None),
            (None, Some(src @ (TokenSource::Flag(_, p) | TokenSource::Config(_, p)))) => {
                (src.clone(), Some(p.as_path()))
            }
            (None, _) => return Ok(None),
        };
        let token = tokens::load_from(kind, env, path)?;
        Ok(token.map(|t| (t, Sent { kind, from })))
    }

    /// A client sending what `needs` calls for: for the reads the read-only token when
    /// there is one (the least the call needs), else the admin token. Refused (exit
    /// 2) when a token would go in cleartext to another host, or the CA file is bad.
    pub fn session(&self, needs: Needs) -> anyhow::Result<Session> {
        let (token, kind) = match needs {
            Needs::Nothing => (None, None),
            Needs::Read => match self.token(TokenKind::Read)? {
                Some(t) => (Some(t), Some(TokenKind::Read)),
                None => (self.token(TokenKind::Admin)?, Some(TokenKind::Read)),
            },
            Needs::Admin => (self.token(TokenKind::Admin)?, Some(TokenKind::Admin)),
        };
        let (token, sent) = token.map_or((None, None), |(t, s)| (Some(t), Some(s)));
        Ok(Session {
            client: Client::new(self.base.clone(), token, &self.transport)?,
            needs: kind,
            sent,
        })
    }

    /// Whether a daemon answers at [`Endpoint::base`]; if not, why (what answered
    /// instead, or why nothing did). An `Err` when that cannot be told: a bad CA
    /// file, or a peer whose TLS failed.
    pub async fn answers(&self) -> anyhow::Result<Result<(), String>> {
        Client::new(self.base.clone(), None, &self.transport)?
            .probe_health(HEALTH_WAIT)
            .await
    }
}

/// Calls to the daemon with the token a command needs; refusals of the token say
/// exactly what to set.
pub struct Session {
    client: Client,
    needs: Option<TokenKind>,
    sent: Option<Sent>,
}

impl Session {
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.client.get(path).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<Answer> {
        self.client.post(path, body).await
    }

    /// Fails with the daemon's message when it did not answer 2xx; a refusal of the
    /// token (401, 403) adds what to set.
    pub fn check(&self, answer: &Answer) -> anyhow::Result<()> {
        let message = answer.body["message"].as_str().unwrap_or("");
        let hint = self
            .needs
            .map(|needs| client::token_hint(needs, self.sent.as_ref(), answer.status, message));
        client::check(answer, hint.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unread() -> Loaded {
        Loaded::from_result(Err(ConfigError::Read {
            path: "monitor.toml".into(),
            reason: "gone".into(),
        }))
    }

    fn loaded(admin: &str) -> Loaded {
        let text = format!(
            "[app]\nid = \"x\"\n[regions.primary]\nname = \"us-east-1\"\n\
             [regions.secondary]\nname = \"ap-northeast-1\"\n{admin}"
        );
        Loaded::from_result(failover_config::parse(
            &text,
            Vec::<(String, String)>::new(),
        ))
    }

    fn args(url: Option<&str>, token_file: Option<&str>) -> DaemonArgs {
        DaemonArgs {
            url: url.map(str::to_owned),
            token_file: token_file.map(PathBuf::from),
            ..DaemonArgs::default()
        }
    }

    #[test]
    fn without_a_config_the_defaults_and_a_note_when_it_matters() {
        let none = |_: &str| false;
        let (e, note) =
            Endpoint::resolve_with(&args(None, None), None, Needs::Nothing, &unread(), none);
        assert_eq!(e.base, "http://127.0.0.1:9464");
        let note = note.unwrap();
        assert!(
            note.starts_with("the config was not read (monitor.toml: cannot read"),
            "{note}"
        );
        assert!(note.contains("using http://127.0.0.1:9464"), "{note}");
        // --url given and no token needed: the config did not matter
        let url = args(Some("http://10.0.0.1:9"), None);
        let (e, note) = Endpoint::resolve_with(&url, None, Needs::Nothing, &unread(), none);
        assert_eq!((e.base.as_str(), note), ("http://10.0.0.1:9", None));
        // a token needed: it matters unless the environment or a flag gives one
        assert!(
            Endpoint::resolve_with(&url, None, Needs::Admin, &unread(), none)
                .1
                .is_some()
        );
        let admin_env = |v: &str| v == TokenKind::Admin.env();
        assert!(
            Endpoint::resolve_with(&url, None, Needs::Admin, &unread(), admin_env)
                .1
                .is_none()
        );
        assert!(
            Endpoint::resolve_with(&url, None, Needs::Read, &unread(), admin_env)
                .1
                .is_none()
        );
        let flag = args(Some("http://10.0.0.1:9"), Some("/run/t"));
        let (e, note) = Endpoint::resolve_with(&flag, None, Needs::Admin, &unread(), none);
        assert_eq!(
            e.admin_file,
            Some(TokenSource::Flag("--token-file", "/run/t".into()))
        );
        assert!(note.is_none());
    }

    #[test]
    fn a_loaded_config_gives_the_address_and_the_token_files() {
        let config = loaded(
            "[admin]\nlisten = \"0.0.0.0:9500\"\ntoken_file = \"/etc/t\"\nread_token_file = \"/etc/r\"\n",
        );
        let (e, note) =
            Endpoint::resolve_with(&args(None, None), None, Needs::Read, &config, |_| false);
        assert_eq!(e.base, "http://127.0.0.1:9500");
        assert_eq!(
            e.admin_file,
            Some(TokenSource::Config("admin.token_file", "/etc/t".into()))
        );
        assert_eq!(
            e.read_file,
            Some(TokenSource::Config(
                "admin.read_token_file",
                "/etc/r".into()
            ))
        );
        assert!(note.is_none());
        assert_eq!(e.transport, Transport::default());
        // with TLS, the config's address is https:// and its certificate is trusted
        let tls = loaded(
            "[admin]\nlisten = \"0.0.0.0:9500\"\ntls_cert_file = \"/etc/c.pem\"\n\
             tls_key_file = \"/etc/k.pem\"\n",
        );
        let (e, _) = Endpoint::resolve_with(&args(None, None), None, Needs::Read, &tls, |_| false);
        assert_eq!(e.base, "https://127.0.0.1:9500");
        assert_eq!(
            e.transport.ca_file,
            Some(("/etc/c.pem".into(), "admin.tls_cert_file"))
        );
        // ... but not for another URL, and --ca-file wins
        let (e, _) = Endpoint::resolve_with(
            &args(Some("https://h:1"), None),
            None,
            Needs::Read,
            &tls,
            |_| false,
        );
        assert_eq!(e.transport.ca_file, None);
        let ca = DaemonArgs {
            ca_file: Some("/ca.pem".into()),
            allow_cleartext_token: true,
            ..DaemonArgs::default()
        };
        let (e, _) = Endpoint::resolve_with(&ca, None, Needs::Read, &tls, |_| false);
        assert_eq!(
            e.transport,
            Transport {
                ca_file: Some(("/ca.pem".into(), "--ca-file")),
                allow_cleartext_token: true
            }
        );
        // flags win over the config
        let (e, _) = Endpoint::resolve_with(
            &args(Some("http://h:1"), Some("/x")),
            Some("/y".into()),
            Needs::Read,
            &config,
            |_| false,
        );
        assert_eq!(e.base, "http://h:1");
        assert_eq!(
            e.admin_file,
            Some(TokenSource::Flag("--token-file", "/x".into()))
        );
        assert_eq!(
            e.read_file,
            Some(TokenSource::Flag("--read-token-file", "/y".into()))
        );
    }
}
