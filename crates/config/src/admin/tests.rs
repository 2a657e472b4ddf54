//! `[admin]` alone: the address, TLS's two files, the limits, and what a non-loopback
//! address needs.

use super::*;

/// `[admin]` from its keys as JSON (what the file's TOML turns into).
fn raw(json: &str) -> RawAdmin {
    serde_json::from_str(&format!("{{{json}}}")).unwrap()
}

fn admin(listen: &str) -> AdminSettings {
    RawAdmin {
        listen: Some(listen.into()),
        ..RawAdmin::default()
    }
    .validate()
    .unwrap()
}

fn refusal(json: &str) -> String {
    raw(json).validate().unwrap_err().to_string()
}

#[test]
fn only_loopback_may_go_without_a_token() {
    for open in ["127.0.0.1:9464", "[::1]:9464"] {
        assert!(admin(open).check_exposure(false).is_ok(), "{open}");
    }
    for exposed in ["0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464"] {
        assert!(admin(exposed).check_exposure(false).is_err(), "{exposed}");
    }
    assert_eq!(
        admin("[::]:9464")
            .check_exposure(false)
            .unwrap_err()
            .to_string(),
        "admin.listen = \"[::]:9464\": a non-loopback address needs an admin token \
         (admin.token_file or FAILOVER_MONITOR_ADMIN_TOKEN)"
    );
}

#[test]
fn a_token_crosses_a_non_loopback_address_only_over_tls_unless_told_otherwise() {
    for exposed in ["0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464"] {
        let err = admin(exposed).check_exposure(true).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "admin.listen = \"{exposed}\": a non-loopback address without TLS would \
                 carry the tokens in cleartext: set admin.tls_cert_file and \
                 admin.tls_key_file, or admin.allow_cleartext_token = true when a \
                 TLS-terminating proxy or load balancer is the only way to this port"
            )
        );
        let mut tls = admin(exposed);
        tls.tls = Some(AdminTls {
            cert_file: "/c".into(),
            key_file: "/k".into(),
        });
        assert!(tls.check_exposure(true).is_ok(), "{exposed}");
        assert!(
            tls.check_exposure(false).is_err(),
            "TLS does not replace the token"
        );
        let mut sidecar = admin(exposed);
        sidecar.allow_cleartext_token = true;
        assert!(sidecar.check_exposure(true).is_ok(), "{exposed}");
        assert!(sidecar.check_exposure(false).is_err());
    }
    // loopback: neither is needed
    assert!(admin("127.0.0.1:1").check_exposure(true).is_ok());
}

#[test]
fn tls_needs_both_files() {
    let both = raw(r#""tls_cert_file": "/c.pem", "tls_key_file": "/k.pem""#)
        .validate()
        .unwrap();
    assert_eq!(
        both.tls,
        Some(AdminTls {
            cert_file: "/c.pem".into(),
            key_file: "/k.pem".into()
        })
    );
    assert_eq!(
        refusal(r#""tls_cert_file": "/c.pem""#),
        "admin.tls_key_file = (not set): required with admin.tls_cert_file: the \
         certificate's private key"
    );
    assert_eq!(
        refusal(r#""tls_key_file": "/k.pem""#),
        "admin.tls_cert_file = (not set): required with admin.tls_key_file: the \
         certificate of that key"
    );
}

#[test]
fn limits_have_defaults_and_bounds() {
    let d = RawAdmin::default().validate().unwrap();
    assert_eq!(d.limits, AdminLimits::default());
    assert_eq!(
        (
            d.limits.header_read_timeout,
            d.limits.idle_timeout,
            d.limits.max_connection_age,
            d.limits.max_connections
        ),
        (
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(60),
            64
        )
    );
    assert!(d.tls.is_none() && !d.allow_cleartext_token);
    let set = raw(
        r#""header_read_timeout": "1s", "idle_timeout": "2s", "max_connection_age": "31100ms",
           "max_connections": 1, "allow_cleartext_token": true"#,
    )
    .validate()
    .unwrap();
    assert_eq!(
        set.limits,
        AdminLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            max_connection_age: Duration::from_millis(31_100),
            max_connections: 1,
        }
    );
    assert!(set.allow_cleartext_token);
    for (text, err) in [
        (
            r#""header_read_timeout": "50ms""#,
            "admin.header_read_timeout = 50ms: must be at least 100ms",
        ),
        (
            r#""idle_timeout": "0s""#,
            "admin.idle_timeout = 0s: must be at least 100ms",
        ),
        (
            r#""max_connection_age": "35s""#,
            "admin.max_connection_age = 35s: must be more than admin.header_read_timeout \
             (5s) + 30s (the longest a request may take), so that a connection's first \
             request can finish",
        ),
        (
            r#""max_connections": 0"#,
            "admin.max_connections = 0: 1 to 1024",
        ),
        (
            r#""max_connections": 1025"#,
            "admin.max_connections = 1025: 1 to 1024",
        ),
    ] {
        assert_eq!(refusal(text), err, "{text}");
    }
}

#[test]
fn listen_is_an_address_not_a_host_name() {
    assert_eq!(
        RawAdmin::default().validate().unwrap().listen,
        defaults::ADMIN_LISTEN.parse::<SocketAddr>().unwrap()
    );
    let err = refusal(r#""listen": "localhost:9464""#);
    assert!(
        err.starts_with("admin.listen = \"localhost:9464\""),
        "{err}"
    );
}
