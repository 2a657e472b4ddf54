//! The client without a daemon: refusals and their hints, URLs, the transport's
//! checks.

use super::*;

#[test]
fn refusals_of_the_token_say_what_to_set() {
    let refused = |status: u16| Answer {
        status,
        body: json!({"error": "unauthorized", "message": "no"}),
    };
    let err = check(&refused(401), Some(READ_HINT))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("the daemon answered 401: no\n"), "{err}");
    assert!(err.contains("FAILOVER_MONITOR_ADMIN_READ_TOKEN"), "{err}");
    let err = check(&refused(403), Some(ADMIN_HINT))
        .unwrap_err()
        .to_string();
    assert!(err.contains("set FAILOVER_MONITOR_ADMIN_TOKEN"), "{err}");
    // other refusals carry no hint
    let err = check(&refused(409), Some(ADMIN_HINT))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "the daemon answered 409: no");
    assert!(check(&refused(200), Some(ADMIN_HINT)).is_ok());
    assert_eq!(history_path(5, None), "/v1/history?limit=5");
    assert_eq!(history_path(5, Some(9)), "/v1/history?limit=5&before=9");
    assert!(
        render_history(&json!({"records": [], "next_before": 21}))
            .contains("older records: --before 21")
    );
    assert_eq!(
        render_history(&json!({"records": [], "next_before": null})),
        ""
    );
}

#[test]
fn token_hints_name_the_token_sent_and_what_to_set() {
    let env = Sent {
        kind: TokenKind::Admin,
        from: TokenSource::Env(TOKEN_ENV),
    };
    let file = Sent {
        kind: TokenKind::Read,
        from: TokenSource::Config("admin.read_token_file", "/etc/r".into()),
    };
    let denied = "a valid `Authorization: Bearer <token>` header is required";
    let h = token_hint(TokenKind::Admin, None, 401, denied);
    assert!(h.starts_with("no token was sent; this command sends the admin token"));
    let h = token_hint(TokenKind::Admin, Some(&env), 401, denied);
    assert!(
        h.starts_with(
            "the daemon does not have the admin token sent (from FAILOVER_MONITOR_ADMIN_TOKEN); "
        ),
        "{h}"
    );
    let h = token_hint(TokenKind::Admin, Some(&env), 403, "forbidden");
    assert!(h.contains("is the daemon's read-only token; this command sends the admin token"));
    let h = token_hint(TokenKind::Read, Some(&file), 401, denied);
    assert!(
        h.starts_with(
            "the daemon does not have the read-only token sent \
             (from admin.read_token_file = /etc/r); status and history send"
        ),
        "{h}"
    );
    // the daemon without tokens: it is the daemon that needs one
    let h = token_hint(
        TokenKind::Admin,
        Some(&env),
        401,
        "no admin token is configured (x)",
    );
    assert!(h.starts_with("the daemon itself has no admin token"), "{h}");
    let h = token_hint(
        TokenKind::Read,
        None,
        401,
        "no token is configured: reads are disabled",
    );
    assert!(h.starts_with("the daemon itself has no token"), "{h}");
    assert!(h.contains("set FAILOVER_MONITOR_ADMIN_READ_TOKEN"), "{h}");
}

#[test]
fn a_token_goes_in_cleartext_only_to_loopback_unless_allowed() {
    let strict = Transport::default();
    let allowed = Transport {
        allow_cleartext_token: true,
        ..Transport::default()
    };
    for local in [
        "http://127.0.0.1:9464",
        "http://[::1]:1",
        "http://LocalHost:9",
    ] {
        assert!(check_base(local, true, &strict).is_ok(), "{local}");
    }
    for remote in ["http://10.0.0.5:9464", "http://monitor.internal:9464"] {
        let err = check_base(remote, true, &strict).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "refusing to send a token to {remote} in cleartext"
            )),
            "{err}"
        );
        assert!(err.contains("--allow-cleartext-token"), "{err}");
        assert!(check_base(remote, true, &allowed).is_ok());
        assert!(
            check_base(remote, false, &strict).is_ok(),
            "no token, no risk"
        );
        let https = remote.replace("http:", "https:");
        assert!(check_base(&https, true, &strict).is_ok());
    }
    assert!(check_base("ftp://h/", false, &strict).is_err());
    assert!(check_base("not a url", false, &strict).is_err());
}

#[test]
fn a_ca_file_that_cannot_be_used_is_named() {
    let dir = std::env::temp_dir().join(format!("fm-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let with = |path: &std::path::Path| Transport {
        ca_file: Some((path.to_path_buf(), "--ca-file")),
        ..Transport::default()
    };
    let err = trusted(&with(&empty)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "--ca-file {}: holds no certificate (-----BEGIN CERTIFICATE-----)",
            empty.display()
        )
    );
    let err = trusted(&with(&dir.join("missing.pem")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.pem: cannot be read"), "{err}");
    assert!(trusted(&Transport::default()).unwrap().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wildcard_listen_addresses_become_loopback() {
    assert_eq!(
        base_url("0.0.0.0:9464".parse().unwrap(), false),
        "http://127.0.0.1:9464"
    );
    assert_eq!(
        base_url("[::]:9464".parse().unwrap(), true),
        "https://[::1]:9464"
    );
    assert_eq!(
        base_url("10.1.2.3:80".parse().unwrap(), false),
        "http://10.1.2.3:80"
    );
}
