//! monitor.toml texts for the emulator: its regions and app filled in, quick probing,
//! every probe kind it can serve, and the configs of cooperating instances.

use failover_config::TablesMode;

use crate::emulator::Emulator;
use crate::{APP_ID, PROJECT};

/// Quick probing, so that tests run in seconds: down after 3 x 300 ms.
pub const FAST_MONITOR: &str = r#"
[probe_defaults]
interval = "300ms"
timeout = "250ms"
jitter = "20ms"
fall = 3
rise = 2
"#;

/// Every probe kind the emulator can serve, on both regions.
pub const PROBES_ALL_KINDS: &str = r#"
[[probes]]
name = "p-endpoint"
kind = "http"
region = "primary"
url = "{primary}/"
expect_body = "ListAllMyBucketsResult"
[[probes]]
name = "p-photos"
kind = "s3"
region = "primary"
check = "roundtrip"
[[probes]]
name = "p-config"
kind = "dynamodb"
region = "primary"
[[probes]]
name = "p-alarm"
kind = "cloudwatch_alarm"
region = "primary"
alarms = ["photos-primary-api-5xx"]
[[probes]]
name = "s-photos"
kind = "s3"
region = "secondary"
[[probes]]
name = "s-config"
kind = "dynamodb"
region = "secondary"
check = "describe_table"
"#;

impl Emulator {
    /// A monitor.toml for this emulator: `[app]` and `[regions]` filled in, then `body`
    /// (monitor, probes, policy ...), in which `{primary}` and `{secondary}` become the
    /// regions' URLs. For an emulator started per region, `stack.tables =
    /// "per-region"` too (in the body's `[stack]` when it has one); otherwise
    /// `stack.tables` is left to its default, global tables.
    pub fn config(&self, body: &str) -> String {
        let body = body
            .replace("{primary}", &self.primary.url())
            .replace("{secondary}", &self.secondary.url());
        let body = match self.tables_mode() {
            TablesMode::Global => body,
            TablesMode::PerRegion if body.contains("[stack]\n") => {
                body.replacen("[stack]\n", "[stack]\ntables = \"per-region\"\n", 1)
            }
            TablesMode::PerRegion => format!("{body}\n[stack]\ntables = \"per-region\"\n"),
        };
        format!(
            "[app]\nid = \"{APP_ID}\"\nproject = \"{PROJECT}\"\n\
             [regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"{p}\"\n\
             [regions.secondary]\nname = \"ap-northeast-1\"\nendpoint_url = \"{s}\"\n{body}",
            p = self.primary.url(),
            s = self.secondary.url(),
        )
    }
}

/// The config of one of several cooperating instances: `me` among `instances`, with
/// its own way to the primary (`primary_url`, a [`crate::proxy::Proxy`]) and the
/// shared secondary; `extra` goes into `[monitor]`.
pub fn cooperating_config(
    emu: &Emulator,
    me: &str,
    instances: &[&str],
    primary_url: &str,
    extra: &str,
) -> String {
    let list = instances
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[app]\nid = \"{APP_ID}\"\nproject = \"{PROJECT}\"\n\
         [regions.primary]\nname = \"us-east-1\"\nendpoint_url = \"{primary_url}\"\n\
         [regions.secondary]\nname = \"ap-northeast-1\"\nendpoint_url = \"{s}\"\n\
         [monitor]\ninstance_id = \"{me}\"\nstate_refresh = \"500ms\"\nhold_down = \"0s\"\n{extra}\n\
         [coordination]\ninstances = [{list}]\nlease = \"2s\"\nrenew_every = \"300ms\"\nview_ttl = \"2s\"\n\
         {FAST_MONITOR}\n\
         [[probes]]\nname = \"p-endpoint\"\nkind = \"http\"\nregion = \"primary\"\nurl = \"{primary_url}/\"\n\
         [[probes]]\nname = \"p-config\"\nkind = \"dynamodb\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"p-photos\"\nkind = \"s3\"\nregion = \"primary\"\n\
         [[probes]]\nname = \"s-config\"\nkind = \"dynamodb\"\nregion = \"secondary\"\n{stack}",
        s = emu.secondary.url(),
        stack = match emu.tables_mode() {
            TablesMode::Global => "",
            TablesMode::PerRegion => "[stack]\ntables = \"per-region\"\n",
        },
    )
}
