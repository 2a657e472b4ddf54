//! How long a real outage may take to be committed as a failover: the bound the
//! simulation checks in every seed and the emulator's trials measure against
//! (`docs/ARCHITECTURE.md`, "How fast a real outage is failed over").

use std::time::Duration;

use failover_config::Settings;

/// The longest from the moment the primary stops answering every instance to the
/// failover committed in the secondary: [`Settings::failover_bound`], which says
/// how it is made and under which proviso.
pub fn failover_bound(s: &Settings) -> Duration {
    s.failover_bound()
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = r#"
        [app]
        id = "app-1"
        [regions.primary]
        name = "us-east-1"
        [regions.secondary]
        name = "ap-northeast-1"
        [[probes]]
        name = "p-config"
        kind = "dynamodb"
        region = "primary"
        [[probes]]
        name = "s-config"
        kind = "dynamodb"
        region = "secondary"
        [monitor]
        instance_id = "a"
        [coordination]
        instances = ["a", "b", "c"]
    "#;

    fn bound(extra: &str) -> Duration {
        let text = format!("{THREE}{extra}");
        failover_bound(&failover_config::parse(&text, Vec::new()).unwrap())
    }

    /// The figure docs/ARCHITECTURE.md gives for the defaults: detection 5 x 2 s +
    /// 200 ms + 1 s, votes 3 x 2 s, leader 10 s + 2 x 2 s, commit 2 x 3 s + 500 ms.
    #[test]
    fn the_defaults_of_three_instances_bound_a_failover_at_37_7_s() {
        assert_eq!(
            bound(""),
            Duration::from_millis(11_200 + 6_000 + 14_000 + 6_500)
        );
    }

    /// Each part moves the bound by what it adds, and only the slowest primary probe
    /// counts.
    #[test]
    fn the_bound_follows_each_setting() {
        let base = bound("");
        assert_eq!(bound("view_ttl = \"12s\"\n"), base + Duration::from_secs(2));
        assert_eq!(
            bound("renew_every = \"1s\"\n"),
            base - Duration::from_secs(5)
        );
        let fenced = THREE.replace(
            "instance_id = \"a\"",
            "instance_id = \"a\"\nfence_for = \"5s\"\nmax_fence = \"20s\"",
        );
        let s = failover_config::parse(&fenced, Vec::new()).unwrap();
        assert_eq!(failover_bound(&s), base + Duration::from_millis(26_500));
        let alone = THREE.replace(
            "[coordination]\n        instances = [\"a\", \"b\", \"c\"]",
            "",
        );
        let s = failover_config::parse(&alone, Vec::new()).unwrap();
        assert_eq!(failover_bound(&s), Duration::from_millis(11_200 + 6_500));
    }
}
