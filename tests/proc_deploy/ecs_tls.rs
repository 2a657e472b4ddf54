//! The ECS task serves its admin API over TLS: the certificate and key come from
//! Secrets Manager through a volume that a first container writes, the monitor reads
//! them from the paths its environment names, and its health check speaks HTTPS with
//! that certificate. `check-config` with the task's environment accepts it, and
//! refuses it without TLS.

use std::process::Command;

use serde_json::Value;

use super::{binary, read, repo};

/// The `name`d container of the task definition.
fn container<'a>(td: &'a Value, name: &str) -> &'a Value {
    td["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["environment"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

#[test]
fn ecs_task_serves_the_admin_api_over_tls_from_secrets() {
    let td: Value = serde_json::from_str(&read("deploy/ecs/task-definition.json")).unwrap();
    let monitor = &td["containerDefinitions"][0];
    let cert = env(monitor, "FAILOVER_MONITOR__ADMIN__TLS_CERT_FILE").expect("a certificate");
    let key = env(monitor, "FAILOVER_MONITOR__ADMIN__TLS_KEY_FILE").expect("a key");
    assert!(
        env(monitor, "FAILOVER_MONITOR__ADMIN__ALLOW_CLEARTEXT_TOKEN").is_none(),
        "TLS, not cleartext"
    );
    // both files are on a volume mounted read-only ...
    let mount = &monitor["mountPoints"][0];
    let dir = mount["containerPath"].as_str().unwrap();
    assert_eq!(mount["readOnly"], true);
    assert_eq!(
        (cert, key),
        (
            format!("{dir}/cert.pem").as_str(),
            format!("{dir}/key.pem").as_str()
        )
    );
    let volume = mount["sourceVolume"].as_str().unwrap();
    assert!(
        td["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == volume)
    );
    // ... written by a container the monitor waits for, from two secrets
    let dep = &monitor["dependsOn"][0];
    assert_eq!(dep["condition"], "SUCCESS");
    let writer = container(&td, dep["containerName"].as_str().unwrap());
    assert_eq!(writer["essential"], false);
    let wmount = &writer["mountPoints"][0];
    assert_eq!(wmount["sourceVolume"], volume);
    let wdir = wmount["containerPath"].as_str().unwrap();
    let script = writer["command"][0].as_str().unwrap();
    let secrets: Vec<&str> = writer["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(
                s["valueFrom"]
                    .as_str()
                    .unwrap()
                    .starts_with("arn:aws:secretsmanager:")
            );
            s["name"].as_str().unwrap()
        })
        .collect();
    for (secret, file) in secrets.iter().zip(["cert.pem", "key.pem"]) {
        assert!(
            script.contains(&format!("\"${secret}\" > {wdir}/{file}")),
            "{script}"
        );
    }
    assert!(script.starts_with("umask 077") && script.contains("chown 65532:65532"));
    assert_eq!(monitor["user"], "65532:65532");
    // the health check speaks HTTPS to loopback and trusts the task's certificate
    let hc: Vec<&str> = monitor["healthCheck"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let after = |flag: &str| hc.iter().position(|a| *a == flag).map(|i| hc[i + 1]);
    assert_eq!(after("--url"), Some("https://127.0.0.1:9464"));
    assert_eq!(after("--ca-file"), Some(cert));
    let readme = read("deploy/ecs/README.md");
    for word in [
        "admin-tls-cert",
        "127.0.0.1",
        "ALLOW_CLEARTEXT_TOKEN",
        "GetSecretValue",
    ] {
        assert!(
            readme.contains(word),
            "deploy/ecs/README.md explains {word}"
        );
    }
    check_config_with_the_task_environment(monitor);
}

/// `check-config` with the monitor container's environment (its files stand in for
/// the volume's: a certificate made with `openssl`) accepts it; without the TLS
/// variables it refuses the address.
fn check_config_with_the_task_environment(monitor: &Value) {
    let dir = std::env::temp_dir().join(format!("fm-ecs-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-nodes", "-days", "1", "-newkey", "rsa:2048",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-subj",
            "/CN=failover-monitor",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output()
        .expect("the openssl command line");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let check = |tls: bool| {
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(repo().join("monitor.toml"))
            .arg("check-config")
            .env("FAILOVER_MONITOR_ADMIN_TOKEN", "0123456789abcdef-ecs");
        for e in monitor["environment"].as_array().unwrap() {
            let (name, value) = (e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
            match name {
                "FAILOVER_MONITOR__ADMIN__TLS_CERT_FILE" if tls => cmd.env(name, &cert),
                "FAILOVER_MONITOR__ADMIN__TLS_KEY_FILE" if tls => cmd.env(name, &key),
                n if n.contains("TLS_") => &mut cmd,
                _ => cmd.env(name, value),
            };
        }
        cmd.output().unwrap()
    };
    let out = check(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("would carry the tokens in cleartext"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
