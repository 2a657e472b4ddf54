//! One simulated process's way to the world: its backend for the real daemon (the
//! same seam AWS is behind), with every store call, probe and DNS change going over
//! this instance's own paths. A call of a stopped process waits (it sends nothing);
//! a cut path hangs until the call's deadline; a region that is gone refuses; a write
//! is applied atomically at the table and may still time out on the way back (it
//! applied anyway), as on a real network.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use failover_config::{CheckSpec, ProbeSpec, Settings};
use failover_core::drill::DrillRecord;
use failover_core::lease::LeaseRecord;
use failover_core::model::{AppState, AuditRecord, ConfigItem, PauseRecord, Role, keys};
use failover_daemon::action::{
    ActionError, Canaries, CanaryPair, CanaryStore, Commit, CopyFrom, DnsRecord, ItemStore, Seen,
    WriteError,
};
use failover_daemon::backend::Backend;
use failover_daemon::client_path::{ClientPath, ClientState};
use failover_daemon::clock::WallClock;
use failover_daemon::coord::{CoordError, CoordStore, PeerView};
use failover_daemon::gate::Gate;
use failover_daemon::probe::{Probe, ProbeError};
use failover_testkit::{MemCanary, MemCoordStore, MemDns, MemItemStore, Record, TokioWallClock};
use tokio::time::{Instant, sleep};

use super::world::{Committed, ItemWrite, Reach, Target, World};

/// Why a call got no answer.
enum Cut {
    Refused,
    TimedOut,
}

/// One process's network.
#[derive(Clone)]
pub struct Net {
    world: World,
    instance: String,
    process: String,
    gate: Gate,
    /// Every store call's deadline (the daemon's `write_timeout`).
    limit: Duration,
}

impl Net {
    /// Runs `op` at `target` as a call from this process; see the module comment.
    async fn call<R>(&self, target: Target, op: impl AsyncFnOnce() -> R) -> Result<R, Cut> {
        self.gate.pass().await;
        let start = Instant::now();
        let answer = match self.world.reach(&self.instance, target) {
            Reach::Refused => {
                sleep(Duration::from_millis(1)).await;
                Err(Cut::Refused)
            }
            Reach::Hang => {
                sleep(self.limit).await;
                Err(Cut::TimedOut)
            }
            Reach::Answers(ms) => {
                sleep(Duration::from_millis(ms / 2)).await;
                // The region may have gone while the request travelled.
                match self.world.reach(&self.instance, target) {
                    Reach::Answers(_) => {
                        let r = op().await;
                        sleep(Duration::from_millis(ms - ms / 2)).await;
                        if start.elapsed() > self.limit {
                            Err(Cut::TimedOut)
                        } else {
                            Ok(r)
                        }
                    }
                    Reach::Refused => Err(Cut::Refused),
                    Reach::Hang => {
                        sleep(self.limit.saturating_sub(start.elapsed())).await;
                        Err(Cut::TimedOut)
                    }
                }
            }
        };
        self.gate.pass().await;
        answer
    }
}

impl Net {
    /// The commit region answered a write with a refusal (busy) or an error: the
    /// liveness check allows for the retry (`props.rs`).
    fn refused(&self, commit: bool) {
        self.world.lock().refused.push((Instant::now(), commit));
    }

    fn skew_ms(&self) -> i64 {
        self.world
            .lock()
            .slots
            .get(&self.instance)
            .map_or(0, |s| s.skew_ms)
    }
}

fn unavailable(role: Role, cut: Cut) -> ActionError {
    ActionError::Unavailable {
        region: role,
        reason: match cut {
            Cut::Refused => "connection refused".into(),
            Cut::TimedOut => "timed out".into(),
        },
    }
}

/// A region's config table through one process's network.
struct Items {
    inner: MemItemStore,
    net: Net,
    role: Role,
}

impl Items {
    async fn read_call<T>(
        &self,
        op: impl AsyncFnOnce() -> Result<T, ActionError>,
    ) -> Result<T, ActionError> {
        self.net
            .call(Target::Table(self.role), op)
            .await
            .unwrap_or_else(|c| Err(unavailable(self.role, c)))
    }

    async fn write_call(
        &self,
        commit: bool,
        op: impl AsyncFnOnce() -> Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        let r = self
            .net
            .call(Target::Table(self.role), op)
            .await
            .unwrap_or_else(|c| Err(WriteError::Failed(unavailable(self.role, c))));
        if self.role == Role::Secondary
            && matches!(r, Err(WriteError::Busy(_) | WriteError::Failed(_)))
        {
            self.net.refused(commit);
        }
        r
    }

    /// The commit region saw `c` apply (not an idempotent replay) over `before`
    /// with the lease `lease`: checks that the writer's fence was the lease, and the
    /// hold-down, and logs the commit.
    fn applied(&self, c: &Commit<'_>, before: Option<Record>, lease: Option<Record>) {
        let world = &self.net.world;
        if before == Some(Record::Item(c.item.clone())) {
            return;
        }
        if let Some(f) = c.fence {
            let holds = matches!(&lease, Some(Record::Lease(l)) if l.owner == f.owner && l.token == f.token);
            if !holds {
                world.violation(
                    "deposed-leader-never-commits",
                    format!(
                        "{} committed v{} with fence {f:?}, lease is {lease:?}",
                        self.net.process, c.item.version
                    ),
                );
            }
        }
        let skew_ms = self.net.skew_ms();
        if let Some(Record::Item(before)) = &before
            && c.audit.trigger == failover_core::model::Trigger::Auto
        {
            super::props::hold_down_respected(world, &self.net.process, skew_ms, before, c.item);
        }
        let mut s = world.lock();
        s.item_writes.push(ItemWrite {
            at: Instant::now(),
            item: c.item.clone(),
            skew_ms,
        });
        let epoch = s.epoch;
        if let Some(other) = s.commits[epoch..]
            .iter()
            .find(|k| k.item.version == c.item.version && k.item != *c.item)
        {
            let other = other.clone();
            drop(s);
            world.violation(
                "one-commit-per-version",
                format!(
                    "v{} committed twice: {other:?} and {:?}",
                    c.item.version, c.item
                ),
            );
            s = world.lock();
        }
        s.commits.push(Committed {
            at: Instant::now(),
            process: self.net.process.clone(),
            item: c.item.clone(),
            from: c.from,
            auto: c.audit.trigger == failover_core::model::Trigger::Auto,
        });
        let line = format!(
            "commit v{} {} -> {} by {} ({})",
            c.item.version,
            c.from,
            c.item.state,
            self.net.process,
            if c.fence.is_some() {
                "fenced"
            } else {
                "unfenced"
            }
        );
        drop(s);
        world.trace(line);
    }
}

#[async_trait]
impl ItemStore for Items {
    fn role(&self) -> Role {
        self.role
    }

    async fn read(&self) -> Result<Option<ConfigItem>, ActionError> {
        self.read_call(async || self.inner.read().await).await
    }

    async fn compare_and_set(&self, c: Commit<'_>) -> Result<(), WriteError> {
        self.write_call(true, async || {
            let table = &self.inner.table;
            // As the request finds them: while a transaction is in progress, its
            // items (the lease among them) cannot change under it.
            let before = table.get(super::APP);
            let lease = table.get(&keys::lease(super::APP));
            // A token the table remembers makes this request a replay: it answers
            // success and applies nothing, even when another writer has moved the
            // item since the first request applied (that one was logged then).
            let replay = table.remembers_token(c.token);
            let result = self.inner.compare_and_set(c).await;
            // Applied, whatever the caller hears (it may time out after applying).
            let applied = !replay
                && (result.is_ok() || table.get(super::APP) == Some(Record::Item(c.item.clone())));
            if applied && self.role == Role::Secondary {
                self.applied(&c, before, lease);
            }
            result
        })
        .await
    }

    async fn catch_up(
        &self,
        item: &ConfigItem,
        audits: &[AuditRecord],
        from: CopyFrom<'_>,
    ) -> Result<(), WriteError> {
        self.write_call(false, async || {
            self.inner.catch_up(item, audits, from).await
        })
        .await
    }

    async fn follow_reset(
        &self,
        expected: &ConfigItem,
        item: &ConfigItem,
    ) -> Result<(), WriteError> {
        self.write_call(false, async || {
            self.inner.follow_reset(expected, item).await
        })
        .await
    }

    async fn put_audits(&self, audits: &[AuditRecord]) -> Result<(), WriteError> {
        self.write_call(false, async || self.inner.put_audits(audits).await)
            .await
    }

    async fn audits(
        &self,
        versions: &[u64],
        consistent: bool,
    ) -> Result<Vec<AuditRecord>, ActionError> {
        self.read_call(async || self.inner.audits(versions, consistent).await)
            .await
    }

    async fn read_pause(&self) -> Result<Option<PauseRecord>, ActionError> {
        self.read_call(async || self.inner.read_pause().await).await
    }

    async fn write_pause(
        &self,
        expected: Option<u64>,
        new: &PauseRecord,
    ) -> Result<(), WriteError> {
        self.write_call(false, async || self.inner.write_pause(expected, new).await)
            .await
    }

    async fn read_drill(&self) -> Result<Option<DrillRecord>, ActionError> {
        self.read_call(async || self.inner.read_drill().await).await
    }

    async fn write_drill(
        &self,
        expected: Option<u64>,
        new: &DrillRecord,
    ) -> Result<(), WriteError> {
        self.write_call(false, async || self.inner.write_drill(expected, new).await)
            .await
    }
}

/// The application as a client reaches it, through one process's network: a
/// region's state API answers what its config table holds; its store API and
/// bucket work while its table answers.
struct Client {
    net: Net,
    app: String,
}

#[async_trait]
impl ClientPath for Client {
    fn reads(&self, _region: Role) -> bool {
        true
    }

    fn writes(&self, _region: Role) -> bool {
        true
    }

    async fn state(&self, region: Role) -> Result<ClientState, String> {
        let table = self.net.world.tables[region as usize].clone();
        let answer = self
            .net
            .call(Target::Api(region), async || match table.get(&self.app) {
                Some(Record::Item(i)) => Ok(ClientState {
                    state: i.state,
                    version: Some(i.version),
                }),
                _ => Err("no config item".to_owned()),
            })
            .await;
        answer.unwrap_or_else(|c| Err(unavailable(region, c).to_string()))
    }

    async fn write(&self, region: Role, _comment_id: &str, _nonce: &str) -> Result<(), String> {
        self.net
            .call(Target::Table(region), async || ())
            .await
            .map_err(|c| unavailable(region, c).to_string())
    }

    async fn photo(&self, region: Role, _key: &str) -> Result<(), String> {
        self.write(region, "", "").await
    }
}

/// The coordination items through one process's network.
struct Coord {
    inner: MemCoordStore,
    net: Net,
}

impl Coord {
    /// A write of the coordination items; an answer that is neither done nor a
    /// failed condition is a refusal the liveness check allows for.
    async fn write<T>(
        &self,
        op: impl AsyncFnOnce() -> Result<T, CoordError>,
    ) -> Result<T, CoordError> {
        let r = self
            .net
            .call(Target::Peers, op)
            .await
            .unwrap_or_else(|c| Err(coord_cut(c)));
        if matches!(r, Err(CoordError::Unavailable(_))) {
            self.net.refused(false);
        }
        r
    }
}

fn coord_cut(c: Cut) -> CoordError {
    CoordError::Unavailable(match c {
        Cut::Refused => "connection refused".into(),
        Cut::TimedOut => "timed out".into(),
    })
}

#[async_trait]
impl CoordStore for Coord {
    async fn read(
        &self,
        instances: &[String],
    ) -> Result<(Option<LeaseRecord>, Vec<(String, PeerView)>), CoordError> {
        self.net
            .call(Target::Peers, async || self.inner.read(instances).await)
            .await
            .unwrap_or_else(|c| Err(coord_cut(c)))
    }

    async fn acquire(&self, me: &str, expected: Option<&LeaseRecord>) -> Result<u64, CoordError> {
        let r = self
            .write(async || self.inner.acquire(me, expected).await)
            .await;
        if let Ok(token) = &r {
            self.net
                .world
                .trace(format!("lease taken by {me} (token {token})"));
        }
        r
    }

    async fn renew(&self, me: &str, token: u64) -> Result<u64, CoordError> {
        self.write(async || self.inner.renew(me, token).await).await
    }

    async fn publish(&self, me: &str, view: &PeerView) -> Result<(), CoordError> {
        self.write(async || self.inner.publish(me, view).await)
            .await
    }

    async fn release(&self, me: &str, token: u64) -> Result<(), CoordError> {
        self.write(async || self.inner.release(me, token).await)
            .await
    }
}

/// A canary through one process's network.
struct Canary {
    inner: MemCanary,
    net: Net,
}

#[async_trait]
impl CanaryStore for Canary {
    async fn put(&self, nonce: &str) -> Result<(), ActionError> {
        let role = self.inner.role;
        self.net
            .call(Target::Table(role), async || self.inner.put(nonce).await)
            .await
            .unwrap_or_else(|c| Err(unavailable(role, c)))
    }

    async fn read(&self) -> Result<Option<String>, ActionError> {
        let role = self.inner.role;
        self.net
            .call(Target::Table(role), async || self.inner.read().await)
            .await
            .unwrap_or_else(|c| Err(unavailable(role, c)))
    }
}

/// The DNS record (Route 53's API) through one process's network: reachable while
/// the process has a way out to either region.
struct Dns {
    inner: MemDns,
    net: Net,
}

#[async_trait]
impl DnsRecord for Dns {
    fn value_for(&self, state: AppState) -> String {
        self.inner.value_for(state)
    }

    async fn current(&self) -> Result<Seen, ActionError> {
        self.net
            .call(Target::Dns, async || self.inner.current().await)
            .await
            .unwrap_or_else(|c| Err(unavailable(Role::Secondary, c)))
    }

    async fn replace(&self, seen: &Seen, new: &str, version: u64) -> Result<(), ActionError> {
        self.net
            .call(Target::Dns, async || {
                self.inner.replace(seen, new, version).await
            })
            .await
            .unwrap_or_else(|c| Err(unavailable(Role::Secondary, c)))
    }
}

/// A probe of one part of one region, over this process's path to it.
struct SimProbe {
    target: Target,
    world: World,
    instance: String,
    /// It signs its requests (a `dynamodb` probe): a permission change of the
    /// monitor's role denies it, where the region answers.
    signed: bool,
}

#[async_trait]
impl Probe for SimProbe {
    async fn check(&self) -> Result<(), ProbeError> {
        match self.world.reach(&self.instance, self.target) {
            Reach::Answers(ms) => {
                sleep(Duration::from_millis(ms)).await;
                let role = match self.target {
                    Target::Api(r) | Target::Table(r) => r,
                    _ => Role::Secondary,
                };
                if self.signed && self.world.lock().denied[role as usize] {
                    return Err(ProbeError::Caller(
                        "get_item: AccessDeniedException: not authorized to perform dynamodb:GetItem"
                            .into(),
                    ));
                }
                Ok(())
            }
            Reach::Refused => Err(ProbeError::Transport("connection refused".into())),
            Reach::Hang => std::future::pending().await,
        }
    }
}

/// One process of one instance: the daemon's backend.
pub struct SimBackend {
    pub net: Net,
    pub seed: u64,
    pub clock: TokioWallClock,
}

impl SimBackend {
    pub fn new(
        world: &World,
        instance: &str,
        process: &str,
        seed: u64,
        stopped: tokio::sync::watch::Receiver<bool>,
        clock: TokioWallClock,
        limit: Duration,
    ) -> Self {
        Self {
            net: Net {
                world: world.clone(),
                instance: instance.to_owned(),
                process: process.to_owned(),
                gate: failover_testkit::stoppable_gate(stopped),
                limit,
            },
            seed,
            clock,
        }
    }

    fn canary_pair(&self, table: &'static str, key: String) -> CanaryPair {
        let tables = if table == "data" {
            &self.net.world.data
        } else {
            &self.net.world.tables
        };
        let store = |role: Role| -> Arc<dyn CanaryStore> {
            Arc::new(Canary {
                inner: MemCanary {
                    table: tables[role as usize].clone(),
                    key: key.clone(),
                    role,
                },
                net: self.net.clone(),
            })
        };
        CanaryPair {
            table,
            key: key.clone(),
            primary: store(Role::Primary),
            secondary: store(Role::Secondary),
        }
    }
}

impl Backend for SimBackend {
    fn config_table(&self, s: &Settings, role: Role) -> Arc<dyn ItemStore> {
        Arc::new(Items {
            inner: MemItemStore::new(
                self.net.world.tables[role as usize].clone(),
                &s.app.id,
                role,
            ),
            net: self.net.clone(),
            role,
        })
    }

    fn coordination(&self, s: &Settings) -> Arc<dyn CoordStore> {
        Arc::new(Coord {
            inner: MemCoordStore::new(self.net.world.tables[1].clone(), &s.app.id),
            net: self.net.clone(),
        })
    }

    fn dns(&self, s: &Settings) -> Option<Arc<dyn DnsRecord>> {
        s.route53.as_ref().map(|_| {
            Arc::new(Dns {
                inner: MemDns {
                    writer: self.net.process.clone(),
                    ..self.net.world.dns.clone()
                },
                net: self.net.clone(),
            }) as Arc<dyn DnsRecord>
        })
    }

    fn probe(&self, spec: &ProbeSpec, _s: &Settings) -> Arc<dyn Probe> {
        let (target, signed) = match spec.check {
            CheckSpec::Http { .. } => (Target::Api(spec.region), false),
            _ => (Target::Table(spec.region), true),
        };
        Arc::new(SimProbe {
            target,
            world: self.net.world.clone(),
            instance: self.net.instance.clone(),
            signed,
        })
    }

    fn canaries(&self, s: &Settings) -> Canaries {
        let me = &s.monitor.instance_id;
        Canaries(vec![
            self.canary_pair("config", keys::canary(&s.app.id, me)),
            self.canary_pair("data", keys::data_canary(&s.app.id, me)),
        ])
    }

    fn clock(&self) -> Arc<dyn WallClock> {
        Arc::new(self.clock.clone())
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn process_id(&self) -> String {
        self.net
            .process
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    fn gate(&self) -> Gate {
        self.net.gate.clone()
    }

    fn client_path(&self, s: &Settings) -> Option<Arc<dyn ClientPath>> {
        Some(Arc::new(Client {
            net: self.net.clone(),
            app: s.app.id.clone(),
        }))
    }
}
