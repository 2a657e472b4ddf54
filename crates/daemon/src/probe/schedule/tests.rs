//! The scheduler on paused time: the schedule it keeps, and what a hung probe, a
//! stall or a closed gate do to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

use super::spawn_all;
use crate::gate::{Gate, Pause};
use crate::probe::{Probe, ProbeError, Scheduled};
use failover_core::model::Role;
use failover_core::policy::Observation;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

/// What a test probe does when it runs.
#[derive(Clone, Copy)]
enum Does {
    Answer,
    Take(Duration),
    Hang,
}

/// A probe that notes when each of its runs started.
struct Noted {
    does: Does,
    starts: Arc<Mutex<Vec<Instant>>>,
}

#[async_trait]
impl Probe for Noted {
    async fn check(&self) -> Result<(), ProbeError> {
        self.starts.lock().unwrap().push(Instant::now());
        match self.does {
            Does::Answer => Ok(()),
            Does::Take(d) => {
                sleep(d).await;
                Ok(())
            }
            Does::Hang => std::future::pending().await,
        }
    }
}

/// The timing of every probe of a test.
struct Timing {
    interval: Duration,
    timeout: Duration,
    jitter: Duration,
}

const PLAIN: Timing = Timing {
    interval: S,
    timeout: Duration::from_millis(800),
    jitter: Duration::ZERO,
};

/// Probe `index` at `timing`, doing `does` and noting its starts in `starts`.
fn scheduled(
    index: usize,
    timing: &Timing,
    does: Does,
    starts: Arc<Mutex<Vec<Instant>>>,
) -> Scheduled {
    Scheduled {
        index,
        name: format!("p{index}"),
        region: Role::Primary,
        interval: timing.interval,
        timeout: timing.timeout,
        jitter: timing.jitter,
        prober: Arc::new(Noted { does, starts }),
    }
}

/// Probes doing `does` under one scheduler, and what they did.
struct Run {
    started: Instant,
    starts: Vec<Arc<Mutex<Vec<Instant>>>>,
    rx: mpsc::Receiver<Observation>,
    set: JoinSet<()>,
}

impl Run {
    fn new(does: &[Does], timing: &Timing, seed: u64, gate: &Gate) -> Self {
        let starts: Vec<Arc<Mutex<Vec<Instant>>>> = does.iter().map(|_| Arc::default()).collect();
        let probes = does
            .iter()
            .zip(&starts)
            .enumerate()
            .map(|(index, (does, starts))| scheduled(index, timing, *does, starts.clone()))
            .collect();
        let (tx, rx) = mpsc::channel(1024);
        let mut rng = fastrand::Rng::with_seed(seed);
        Self {
            started: Instant::now(),
            set: spawn_all(probes, tx, None, &mut rng, gate),
            starts,
            rx,
        }
    }

    /// When probe `p`'s runs started, from the scheduler's start.
    fn starts(&self, p: usize) -> Vec<Duration> {
        let starts = self.starts[p].lock().unwrap();
        starts.iter().map(|t| *t - self.started).collect()
    }

    /// The results received so far.
    fn results(&mut self) -> Vec<Observation> {
        std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
    }
}

/// Each probe runs once per interval at its own random phase; results come in time
/// order; one seed gives one schedule.
#[tokio::test(start_paused = true)]
async fn each_probe_runs_once_per_interval_at_its_phase() {
    let mut run = Run::new(&[Does::Answer; 5], &PLAIN, 7, &Gate::open());
    sleep(10 * S + 500 * MS).await;
    let mut phases = Vec::new();
    for p in 0..5 {
        let starts = run.starts(p);
        assert!(starts.len() >= 10, "probe {p}: {starts:?}");
        assert!(starts[0] < S, "the first run within the first interval");
        for pair in starts.windows(2) {
            assert_eq!(pair[1] - pair[0], S, "probe {p}: one interval apart");
        }
        phases.push(starts[0]);
    }
    let mut distinct = phases.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "phases are random: {phases:?}");
    let results = run.results();
    assert!(results.len() >= 50);
    assert!(
        results.windows(2).all(|w| w[0].at <= w[1].at),
        "in time order"
    );
    assert!(results.iter().all(|o| o.ok));

    let again = Run::new(&[Does::Answer; 5], &PLAIN, 7, &Gate::open());
    sleep(S).await;
    let replayed: Vec<Duration> = (0..5).map(|p| again.starts(p)[0]).collect();
    assert_eq!(replayed, phases, "the same seed, the same schedule");
}

/// Each run starts within `jitter` after its slot, and the jitter is drawn anew
/// for every run.
#[tokio::test(start_paused = true)]
async fn jitter_keeps_each_run_within_its_slot() {
    let timing = Timing {
        jitter: 300 * MS,
        ..PLAIN
    };
    let run = Run::new(&[Does::Answer; 4], &timing, 11, &Gate::open());
    sleep(30 * S).await;
    for p in 0..4 {
        let starts = run.starts(p);
        assert!(starts.len() >= 29, "probe {p}: {}", starts.len());
        assert!(starts[0] < S + 300 * MS);
        // The offset of run k from k intervals: the phase plus that run's jitter.
        let offsets: Vec<Duration> = starts
            .iter()
            .enumerate()
            .map(|(k, t)| *t - S * u32::try_from(k).unwrap())
            .collect();
        let (lo, hi) = (offsets.iter().min().unwrap(), offsets.iter().max().unwrap());
        assert!(*hi - *lo <= 300 * MS, "probe {p}: {offsets:?}");
        assert!(
            *hi - *lo > 100 * MS,
            "probe {p}: jitter drawn per run: {offsets:?}"
        );
    }
}

/// A probe that never answers holds only its own slot: the others keep their
/// schedule to the millisecond, and it reports a timeout every interval.
#[tokio::test(start_paused = true)]
async fn a_hung_probe_does_not_delay_the_others() {
    let mut run = Run::new(
        &[Does::Hang, Does::Answer, Does::Answer],
        &PLAIN,
        3,
        &Gate::open(),
    );
    sleep(10 * S + 900 * MS).await;
    for p in 1..3 {
        let starts = run.starts(p);
        assert!(starts.len() >= 10);
        for pair in starts.windows(2) {
            assert_eq!(pair[1] - pair[0], S, "probe {p}: {starts:?}");
        }
    }
    let hung: Vec<Observation> = run.results().into_iter().filter(|o| o.probe == 0).collect();
    assert!(hung.len() >= 9, "{}", hung.len());
    for o in &hung {
        assert!(!o.ok);
        assert_eq!(o.latency, PLAIN.timeout);
        assert_eq!(o.error.as_deref(), Some("timed out after 800ms"));
    }
}

/// A run that outlasts its interval (a stall) is followed by the next slot still
/// ahead: the missed ones are skipped, never fired in a burst.
#[tokio::test(start_paused = true)]
async fn missed_slots_are_skipped_not_fired_in_a_burst() {
    let timing = Timing {
        timeout: 10 * S,
        ..PLAIN
    };
    let run = Run::new(&[Does::Take(2500 * MS)], &timing, 5, &Gate::open());
    sleep(20 * S).await;
    let starts = run.starts(0);
    assert!(starts.len() >= 6, "{starts:?}");
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], 3 * S, "{starts:?}");
    }
}

/// The simulation's SIGSTOP: a gate a test closes and opens.
struct Switch(watch::Receiver<bool>);

#[async_trait]
impl Pause for Switch {
    async fn wait_while_stopped(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stopped| !*stopped).await;
    }
}

/// While the gate is closed, no run starts and a run in flight does not report;
/// once open, the result comes, and the next run is at the next slot ahead.
#[tokio::test(start_paused = true)]
async fn a_closed_gate_holds_runs_and_their_results() {
    let (stop, stopped) = watch::channel(false);
    let gate = Gate::pausable(Arc::new(Switch(stopped)));
    let mut run = Run::new(&[Does::Take(400 * MS)], &PLAIN, 9, &gate);
    sleep(S).await;
    let first = run.starts(0)[0];
    // Stopped 200 ms into the second run, for 3 s.
    sleep_until(run.started + first + S + 200 * MS).await;
    stop.send_replace(true);
    let before = run.results().len();
    sleep(3 * S).await;
    assert_eq!(run.starts(0).len(), 2, "no run starts while stopped");
    assert!(run.results().is_empty(), "nothing reported while stopped");
    stop.send_replace(false);
    sleep(10 * MS).await;
    let held = run.results();
    assert_eq!((before, held.len()), (1, 1), "the held result, once open");
    assert!(held[0].ok);
    assert_eq!(held[0].latency, 400 * MS);
    sleep(2 * S).await;
    let starts = run.starts(0);
    // Stopped from first + 1.2 s to first + 4.2 s: the slots at first + 2, 3 and 4 s
    // are missed, the next run is at first + 5 s.
    assert_eq!(starts[2] - starts[1], 4 * S, "{starts:?}");
}

/// The scheduler ends once nobody takes its results.
#[tokio::test(start_paused = true)]
async fn the_scheduler_stops_when_nobody_listens() {
    let Run { rx, mut set, .. } = Run::new(&[Does::Answer; 3], &PLAIN, 1, &Gate::open());
    drop(rx);
    sleep(2 * S).await;
    assert!(set.join_next().await.is_some_and(|r| r.is_ok()));
}

/// Runs in flight now and at most, counted by a probe while it runs.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
    dropped: AtomicUsize,
}

/// Counts itself in [`InFlight`] from its start until it ends or is dropped.
struct Counted(Arc<InFlight>);

impl Counted {
    fn enter(counts: &Arc<InFlight>) -> Self {
        let n = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most.fetch_max(n, Ordering::SeqCst);
        Self(counts.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A probe that takes `takes` (or hangs) and counts the runs in flight.
struct Slow {
    takes: Option<Duration>,
    counts: Arc<InFlight>,
}

#[async_trait]
impl Probe for Slow {
    async fn check(&self) -> Result<(), ProbeError> {
        let _running = Counted::enter(&self.counts);
        match self.takes {
            Some(d) => sleep(d).await,
            None => std::future::pending().await,
        }
        Ok(())
    }
}

fn slow(
    index: usize,
    takes: Option<Duration>,
    timeout: Duration,
    counts: &Arc<InFlight>,
) -> Scheduled {
    Scheduled {
        index,
        name: format!("slow{index}"),
        region: Role::Primary,
        interval: S,
        timeout,
        jitter: 200 * MS,
        prober: Arc::new(Slow {
            takes,
            counts: counts.clone(),
        }),
    }
}

/// Runs that outlast their interval never pile up: a probe never overlaps itself,
/// so at most one run per probe is in flight, and a run cut by its timeout is
/// dropped (its connection and buffers with it).
#[tokio::test(start_paused = true)]
async fn runs_in_flight_are_bounded_by_the_probes() {
    let counts = Arc::new(InFlight::default());
    let probes: Vec<Scheduled> = (0..20)
        .map(|i| match i % 2 {
            0 => slow(i, Some(2500 * MS), 3 * S, &counts),
            _ => slow(i, None, 1500 * MS, &counts),
        })
        .collect();
    let (tx, mut rx) = mpsc::channel(1024);
    let _set = spawn_all(
        probes,
        tx,
        None,
        &mut fastrand::Rng::with_seed(4),
        &Gate::open(),
    );
    sleep(30 * S).await;
    let results: Vec<Observation> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(results.len() >= 20 * 8, "{}", results.len());
    assert_eq!(
        counts.most.load(Ordering::SeqCst),
        20,
        "one run per probe at most"
    );
    let timed_out = results.iter().filter(|o| o.probe % 2 == 1).count();
    assert!(timed_out >= 10 * 10, "{timed_out}");
    assert!(
        counts.dropped.load(Ordering::SeqCst) >= results.len(),
        "every run that ended, ended for good"
    );
}

/// A reload replaces the schedule: the removed probe runs no more, its hung run in
/// flight is dropped, the kept and the added ones run on the new schedule.
#[tokio::test(start_paused = true)]
async fn a_reload_adds_and_removes_probes() {
    let old = Arc::new(InFlight::default());
    let new = Arc::new(InFlight::default());
    let (tx, mut rx) = mpsc::channel(1024);
    let mut rng = fastrand::Rng::with_seed(8);
    let first = vec![slow(0, Some(10 * MS), S, &old), slow(1, None, 60 * S, &old)];
    let mut set = spawn_all(first, tx.clone(), None, &mut rng, &Gate::open());
    sleep(3 * S).await;
    assert_eq!(
        old.now.load(Ordering::SeqCst),
        1,
        "the hung run is in flight"
    );
    // What the daemon does on a reload.
    set.abort_all();
    let second = vec![
        slow(0, Some(10 * MS), S, &new),
        slow(1, Some(10 * MS), S, &new),
        slow(2, Some(10 * MS), S, &new),
    ];
    let _set = spawn_all(second, tx, None, &mut rng, &Gate::open());
    let before: Vec<Observation> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(
        before.iter().all(|o| o.probe == 0),
        "the hung one never reported"
    );
    sleep(MS).await;
    assert_eq!(
        old.now.load(Ordering::SeqCst),
        0,
        "the old runs were dropped"
    );
    let old_runs = old.dropped.load(Ordering::SeqCst);
    sleep(5 * S).await;
    assert_eq!(
        old.dropped.load(Ordering::SeqCst),
        old_runs,
        "the old probes run no more"
    );
    let after: Vec<Observation> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    for p in 0..3 {
        let runs = after.iter().filter(|o| o.probe == p && o.ok).count();
        assert!((4..=6).contains(&runs), "probe {p}: {runs} runs");
    }
}

/// `n` probes at `timing`, for a scheduler a test drives by hand.
fn plain_probes(n: usize, timing: &Timing) -> Vec<Scheduled> {
    (0..n)
        .map(|index| scheduled(index, timing, Does::Answer, Arc::default()))
        .collect()
}

/// A scheduler whose runs end at once, polled by the test: every start is noted
/// (probe, when), and a turn says how many it started and whether it asked for
/// another turn at once.
struct Driven<M: FnMut(Arc<Scheduled>, Instant) -> std::future::Ready<bool>> {
    scheduler: super::Scheduler<std::future::Ready<bool>, M>,
    starts: Arc<Mutex<Vec<(usize, Instant)>>>,
}

/// Counts its wakes.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn driven(
    n: usize,
    seed: u64,
) -> Driven<impl FnMut(Arc<Scheduled>, Instant) -> std::future::Ready<bool>> {
    let starts: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let noted = starts.clone();
    let mut rng = fastrand::Rng::with_seed(seed);
    let scheduler = super::Scheduler::new(plain_probes(n, &PLAIN), &mut rng, move |probe, _| {
        noted.lock().unwrap().push((probe.index, Instant::now()));
        std::future::ready(true)
    });
    Driven { scheduler, starts }
}

impl<M: FnMut(Arc<Scheduled>, Instant) -> std::future::Ready<bool>> Driven<M> {
    /// One turn now: the runs it started, and whether it woke itself for another.
    fn turn(&mut self) -> (usize, bool) {
        let before = self.starts.lock().unwrap().len();
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let polled = self
            .scheduler
            .poll(&mut std::task::Context::from_waker(&waker));
        assert!(polled.is_pending());
        let started = self.starts.lock().unwrap().len() - before;
        // A wake asks for another turn at once: runs left over by the bound, or a
        // timer already due.
        (started, wakes.0.load(Ordering::SeqCst) > 0)
    }

    /// Turns every 10 ms for `d`, as the runtime would poll it.
    async fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.turn();
            tokio::time::advance(10 * MS).await;
        }
    }

    /// Where probe `p`'s runs fell within the interval, from `origin`.
    fn phases(&self, origin: Instant, since: Instant) -> Vec<Vec<Duration>> {
        let mut by_probe: Vec<Vec<Duration>> = Vec::new();
        for &(p, at) in self.starts.lock().unwrap().iter() {
            if by_probe.len() <= p {
                by_probe.resize(p + 1, Vec::new());
            }
            if at >= since {
                let off = (at - origin).as_nanos() % S.as_nanos();
                by_probe[p].push(Duration::from_nanos(off as u64));
            }
        }
        by_probe
    }
}

/// The whole process stopped for 3 s (SIGSTOP: the scheduler not polled at all):
/// every probe's next run is then overdue by more than an interval. None starts at
/// the resume; each runs at its next slot ahead, at its own phase, so the probes stay
/// spread over the interval instead of running all at once.
#[tokio::test(start_paused = true)]
async fn after_a_stall_each_probe_runs_at_its_next_slot_not_all_at_once() {
    let origin = Instant::now();
    let mut d = driven(300, 11);
    d.run_for(2 * S).await;
    let before = d.phases(origin, origin);
    assert!(
        before.iter().all(|runs| !runs.is_empty()),
        "each ran before"
    );

    tokio::time::advance(3 * S).await; // stopped: no turn at all
    let resumed = Instant::now();
    let (started, _) = d.turn();
    assert_eq!(started, 0, "no overdue run starts at the resume");

    d.run_for(S + 20 * MS).await;
    let after = d.phases(origin, resumed);
    assert_eq!(after.len(), before.len());
    for (p, (was, now)) in before.iter().zip(&after).enumerate() {
        assert!(!now.is_empty(), "probe {p}: a run in the interval after");
        // Polled every 10 ms: a run starts within 10 ms after its slot.
        let late = now[0].as_nanos() as i128 - was[0].as_nanos() as i128;
        let late = late.rem_euclid(S.as_nanos() as i128);
        assert!(
            late < (10 * MS).as_nanos() as i128,
            "probe {p}: {late} ns off its phase"
        );
    }
}

/// A run is skipped as missed only once in a row: a host starved for more than an
/// interval at every turn still runs each probe, late.
#[tokio::test(start_paused = true)]
async fn a_probe_skipped_once_runs_at_its_next_turn_however_late() {
    let mut d = driven(50, 12);
    d.run_for(S).await;
    tokio::time::advance(3 * S).await;
    assert_eq!(d.turn().0, 0, "the first stall: every overdue run skipped");
    tokio::time::advance(3 * S).await;
    assert_eq!(d.turn().0, 50, "the second: each probe runs, late");
}

/// A stall shorter than an interval leaves part of the probes overdue by less than
/// an interval: they run at the resume, but one turn starts at most
/// `STARTS_PER_TURN` of them and asks for another turn at once for the rest.
#[tokio::test(start_paused = true)]
async fn a_turn_starts_a_bounded_number_of_runs_and_asks_for_another() {
    let mut d = driven(2000, 13);
    d.run_for(S).await;
    tokio::time::advance(700 * MS).await;
    let mut turns = Vec::new();
    loop {
        let (started, again) = d.turn();
        turns.push(started);
        if !again {
            break;
        }
    }
    let overdue: usize = turns.iter().sum();
    assert!(overdue > 2 * super::STARTS_PER_TURN, "{turns:?}");
    for (k, started) in turns.iter().enumerate() {
        let left = overdue - turns[..k].iter().sum::<usize>();
        assert_eq!(*started, left.min(super::STARTS_PER_TURN), "{turns:?}");
    }
}
