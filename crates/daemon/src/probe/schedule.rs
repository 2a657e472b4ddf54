//! The scheduler: one task drives every probe from a timer heap.
//!
//! Each probe has a slot: its next due time, its random generator (phase and jitter)
//! and its run in flight, if any. The task keeps the due times in a binary heap and
//! one timer armed at the earliest; when it fires, the due runs start, and the task
//! polls a run again only when that run's own waker says it can progress. So a slow
//! or hung run never delays another (it holds only its slot until its timeout), and
//! concurrency is bounded by the number of probes (a probe never overlaps itself).
//!
//! A run's future (its check, timeout and report, about 2 KB) lives in a box taken
//! from a free list and given back when the run ends: memory grows with the runs in
//! flight at once, not with the number of probes, and a run allocates nothing once
//! the list holds as many boxes as runs ever overlapped.
//!
//! A run passes the [`Gate`] before it acts and before it reports, as each probe's
//! task did before: the simulation stops one process by closing its gate.
//!
//! The schedule is the one each probe had on its own: the first slot at a random
//! phase within the first interval, each run up to `jitter` late, the next slot one
//! interval after the last once the run has reported, and slots missed while the
//! process stalled are skipped, not fired in a burst.
//!
//! A stall (SIGSTOP, a VM's pause, a starved host) leaves every probe's next run
//! overdue at once. A run overdue by a whole interval or more has missed its slot: it
//! moves to its next slot ahead, at its own phase, so the probes stay spread over the
//! interval as before (a burst of every probe at once would open a connection each,
//! more than the pool holds, and measured at 20,000 probes it took the process 7 s
//! to drain). Only once in a row, so that a host starved for longer than an interval
//! at every turn still runs each probe, late. A turn also starts at most
//! [`STARTS_PER_TURN`] runs before it lets the runtime (and the runs that finished)
//! have their turn.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep, sleep_until};

use super::{Scheduled, observe};
use crate::gate::Gate;
use failover_core::policy::Observation;

/// The most runs one turn of the scheduler starts; the rest start in the next turn.
const STARTS_PER_TURN: usize = 512;

/// What every run shares: where results go, the lag histogram, the gate.
struct Shared {
    tx: mpsc::Sender<Observation>,
    lag: Option<prometheus::Histogram>,
    gate: Gate,
}

/// Starts the scheduler of `probes` (one task). It sends every result to `tx` and
/// ends when `tx`'s receiver is dropped or the returned set is dropped. Phases and
/// jitter come from `rng` (one fork per probe, in order), so a seeded one makes the
/// schedule repeatable.
pub fn spawn_all(
    probes: Vec<Scheduled>,
    tx: mpsc::Sender<Observation>,
    lag: Option<prometheus::Histogram>,
    rng: &mut fastrand::Rng,
    gate: &Gate,
) -> JoinSet<()> {
    let shared = Arc::new(Shared {
        tx,
        lag,
        gate: gate.clone(),
    });
    let mut scheduler = Scheduler::new(probes, rng, move |probe, due| {
        one_run(probe, shared.clone(), due)
    });
    let mut set = JoinSet::new();
    set.spawn(async move { poll_fn(|cx| scheduler.poll(cx)).await });
    set
}

/// One run of `probe` due at `due`: past the gate, the check under its timeout,
/// past the gate again, the result sent. False once nobody listens.
async fn one_run(probe: Arc<Scheduled>, shared: Arc<Shared>, due: Instant) -> bool {
    shared.gate.pass().await;
    if let Some(h) = &shared.lag {
        h.observe(Instant::now().saturating_duration_since(due).as_secs_f64());
    }
    let obs = match probe.prober.http() {
        // The lean path: the check's future lives in the slot, unboxed.
        Some(http) => observe(probe.index, probe.timeout, http.check()).await,
        None => observe(probe.index, probe.timeout, probe.prober.check()).await,
    };
    shared.gate.pass().await;
    if let Some(e) = &obs.error {
        tracing::debug!(probe = %probe.name, region = %probe.region, error = %e, "probe failed");
    }
    shared.tx.send(obs).await.is_ok()
}

/// Indices of the slots whose run asked to be polled, and the scheduler's waker.
#[derive(Default)]
struct Ready {
    queued: Vec<u32>,
    scheduler: Option<Waker>,
}

fn lock(ready: &Mutex<Ready>) -> MutexGuard<'_, Ready> {
    // Nothing panics while holding it; a poisoned queue is still a queue.
    ready.lock().unwrap_or_else(|e| e.into_inner())
}

/// The waker of one slot: queues the slot (once) and wakes the scheduler.
struct SlotWaker {
    index: u32,
    queued: AtomicBool,
    ready: Arc<Mutex<Ready>>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut ready = lock(&self.ready);
        ready.queued.push(self.index);
        if let Some(w) = &ready.scheduler {
            w.wake_by_ref();
        }
    }
}

/// Room for one run's future, reused from run to run.
type RunBox<F> = Pin<Box<Option<F>>>;

struct Slot<F> {
    probe: Arc<Scheduled>,
    /// The current slot (the due time before jitter).
    slot: Instant,
    rng: fastrand::Rng,
    /// The run in flight, if any.
    run: Option<RunBox<F>>,
    /// Its last due time was skipped as missed: the next one starts, however late.
    skipped: bool,
    waker: Arc<SlotWaker>,
    handle: Waker,
}

struct Scheduler<F, M> {
    slots: Vec<Slot<F>>,
    /// (due, slot) of every probe not running, earliest first.
    heap: BinaryHeap<Reverse<(Instant, u32)>>,
    ready: Arc<Mutex<Ready>>,
    /// The queue taken from `ready`, polled now (kept for its capacity).
    polling: Vec<u32>,
    /// Boxes of runs that ended, for the next ones.
    free: Vec<RunBox<F>>,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    start: M,
    done: bool,
}

impl<F, M> Scheduler<F, M>
where
    F: Future<Output = bool>,
    M: FnMut(Arc<Scheduled>, Instant) -> F,
{
    fn new(probes: Vec<Scheduled>, rng: &mut fastrand::Rng, start: M) -> Self {
        let now = Instant::now();
        let ready = Arc::new(Mutex::new(Ready::default()));
        let mut heap = BinaryHeap::with_capacity(probes.len());
        let slots = probes
            .into_iter()
            .enumerate()
            .map(|(i, probe)| {
                let index = u32::try_from(i).expect("fewer than 2^32 probes");
                let mut rng = rng.fork();
                let slot = now + probe.interval.mul_f64(rng.f64());
                heap.push(Reverse((slot + jitter(probe.jitter, &mut rng), index)));
                let waker = Arc::new(SlotWaker {
                    index,
                    queued: AtomicBool::new(false),
                    ready: ready.clone(),
                });
                Slot {
                    probe: Arc::new(probe),
                    slot,
                    rng,
                    run: None,
                    skipped: false,
                    handle: Waker::from(waker.clone()),
                    waker,
                }
            })
            .collect();
        Self {
            slots,
            heap,
            ready,
            polling: Vec::new(),
            free: Vec::new(),
            timer: Box::pin(sleep_until(now)),
            armed: None,
            start,
            done: false,
        }
    }

    /// One turn: the runs that can progress, then the runs now due, then the timer
    /// armed at the next due time. Pending until every probe stops (nobody listens).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut ready = lock(&self.ready);
            if !ready
                .scheduler
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                ready.scheduler = Some(cx.waker().clone());
            }
            std::mem::swap(&mut ready.queued, &mut self.polling);
        }
        // Only the runs queued before this turn: one that wakes itself at once (the
        // runtime's budget spent) is polled in the next turn, after others had theirs.
        let mut polling = std::mem::take(&mut self.polling);
        for &i in &polling {
            self.poll_run(i);
        }
        polling.clear();
        self.polling = polling;
        let now = Instant::now();
        let mut started = 0;
        while let Some(&Reverse((due, i))) = self.heap.peek() {
            if due > now {
                break;
            }
            if started == STARTS_PER_TURN {
                cx.waker().wake_by_ref();
                break;
            }
            self.heap.pop();
            let slot = &mut self.slots[i as usize];
            if !slot.skipped && now.saturating_duration_since(due) >= slot.probe.interval {
                slot.skipped = true;
                let next = slot.skip_missed(now);
                self.heap.push(Reverse((next, i)));
                continue;
            }
            slot.skipped = false;
            started += 1;
            let mut room = self.free.pop().unwrap_or_else(|| Box::pin(None));
            room.set(Some((self.start)(slot.probe.clone(), due)));
            slot.run = Some(room);
            self.poll_run(i);
        }
        if self.done {
            return Poll::Ready(());
        }
        self.arm(cx);
        Poll::Pending
    }

    /// Arms the timer at the earliest due time; a timer that has already fired
    /// wakes the task for another turn.
    fn arm(&mut self, cx: &mut Context<'_>) {
        let Some(&Reverse((due, _))) = self.heap.peek() else {
            return;
        };
        if self.armed != Some(due) {
            self.timer.as_mut().reset(due);
            self.armed = Some(due);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.armed = None;
            cx.waker().wake_by_ref();
        }
    }

    /// Polls the run in slot `i`; a finished run schedules the probe's next one.
    fn poll_run(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        slot.waker.queued.store(false, Ordering::Release);
        let Some(run) = slot.run.as_mut().and_then(|r| r.as_mut().as_pin_mut()) else {
            return; // a late wake of a run already finished
        };
        let Poll::Ready(listened) = run.poll(&mut Context::from_waker(&slot.handle)) else {
            return;
        };
        if let Some(mut room) = slot.run.take() {
            room.set(None);
            self.free.push(room);
        }
        if !listened {
            self.done = true;
            return;
        }
        let due = slot.next_due(Instant::now());
        self.heap.push(Reverse((due, i)));
    }
}

impl<F> Slot<F> {
    /// The next run's due time, once the last one reported at `now`: one interval
    /// after the last slot, missed slots skipped, plus this run's jitter.
    fn next_due(&mut self, now: Instant) -> Instant {
        self.slot += self.probe.interval;
        self.skip_missed(now)
    }

    /// The due time of the first slot not behind `now` (the slots missed while the
    /// process stalled are skipped), plus this run's jitter.
    fn skip_missed(&mut self, now: Instant) -> Instant {
        let interval = self.probe.interval;
        if self.slot < now {
            let behind = (now - self.slot).as_nanos() / interval.as_nanos().max(1) + 1;
            self.slot += interval * u32::try_from(behind).unwrap_or(u32::MAX);
        }
        self.slot + jitter(self.probe.jitter, &mut self.rng)
    }
}

fn jitter(max: Duration, rng: &mut fastrand::Rng) -> Duration {
    max.mul_f64(rng.f64())
}

#[cfg(test)]
mod tests;
