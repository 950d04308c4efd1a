//! The deadline timer against a fake hardware timer.

use super::*;
extern crate std;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::vec::Vec;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Set(u64),
    Cancel,
}

struct FakeTimer(Arc<Mutex<Vec<Op>>>);

impl Timer for FakeTimer {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn bind(&mut self, _id: InterruptId) {}
    fn set_deadline(&mut self, deadline: u64) {
        self.0.lock().unwrap().push(Op::Set(deadline));
    }
    fn cancel(&mut self) {
        self.0.lock().unwrap().push(Op::Cancel);
    }
}

static FIRED: AtomicU64 = AtomicU64::new(0);
static LAST_LATENCY: AtomicU64 = AtomicU64::new(0);

fn count(event: TimerEvent) {
    FIRED.fetch_add(1, Ordering::SeqCst);
    LAST_LATENCY.store(event.entered - event.deadline, Ordering::SeqCst);
}

fn timer() -> (DeadlineTimer, Arc<Mutex<Vec<Op>>>) {
    let ops = Arc::new(Mutex::new(Vec::new()));
    (DeadlineTimer::new(Box::new(FakeTimer(ops.clone()))), ops)
}

#[test]
fn one_shot_fires_once_and_early_interrupts_rearm() {
    let (t, ops) = timer();
    let before = FIRED.load(Ordering::SeqCst);
    t.set_deadline(1000, count).unwrap();
    t.handle_interrupt(990); // early: same deadline again, no callback
    assert_eq!(FIRED.load(Ordering::SeqCst), before);
    t.handle_interrupt(1003);
    assert_eq!(FIRED.load(Ordering::SeqCst), before + 1);
    assert_eq!(LAST_LATENCY.load(Ordering::SeqCst), 3);
    t.handle_interrupt(2000); // nothing pending: stop the hardware
    assert_eq!(FIRED.load(Ordering::SeqCst), before + 1);
    assert_eq!(
        *ops.lock().unwrap(),
        [Op::Set(1000), Op::Set(1000), Op::Cancel, Op::Cancel]
    );
}

#[test]
fn periodic_rearms_from_the_deadline_not_from_the_late_interrupt() {
    let (t, ops) = timer();
    assert_eq!(t.start_periodic(100, 0, count), Err(TimerError::ZeroPeriod));
    let handle = t.start_periodic(100, 50, count).unwrap();
    assert_eq!(t.pending(), 1);
    t.handle_interrupt(100);
    t.handle_interrupt(170); // 20 late: next still at 200
    t.handle_interrupt(201);
    let before = FIRED.load(Ordering::SeqCst);
    // 120 late: the deadlines 250, 300 and 350 all passed: three callbacks.
    t.handle_interrupt(370);
    assert_eq!(FIRED.load(Ordering::SeqCst), before + 3);
    assert_eq!(LAST_LATENCY.load(Ordering::SeqCst), 20);
    assert_eq!(
        *ops.lock().unwrap(),
        [
            Op::Set(100),
            Op::Set(150),
            Op::Set(200),
            Op::Set(250),
            Op::Set(400)
        ]
    );
    t.cancel(handle);
    assert_eq!(t.pending(), 0);
    assert_eq!(ops.lock().unwrap().last(), Some(&Op::Cancel));
}

static A_FIRED: AtomicU64 = AtomicU64::new(0);
static B_FIRED: AtomicU64 = AtomicU64::new(0);

fn a(_: TimerEvent) {
    A_FIRED.fetch_add(1, Ordering::SeqCst);
}

fn b(_: TimerEvent) {
    B_FIRED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn several_deadlines_share_the_hardware_timer() {
    let (t, ops) = timer();
    let periodic = t.start_periodic(100, 100, a).unwrap();
    let one_shot = t.set_deadline(150, b).unwrap();
    let later = t.set_deadline(1000, b).unwrap();
    // The hardware always holds the earliest deadline.
    assert_eq!(ops.lock().unwrap().last(), Some(&Op::Set(100)));
    t.handle_interrupt(100);
    assert_eq!(
        (
            A_FIRED.load(Ordering::SeqCst),
            B_FIRED.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    assert_eq!(ops.lock().unwrap().last(), Some(&Op::Set(150)));
    t.handle_interrupt(210); // both passed: each fires once
    assert_eq!(
        (
            A_FIRED.load(Ordering::SeqCst),
            B_FIRED.load(Ordering::SeqCst)
        ),
        (2, 1)
    );
    assert_eq!(ops.lock().unwrap().last(), Some(&Op::Set(300)));
    // The fired one-shot's handle names nothing any more, even once its
    // slot is reused.
    let reused = t.set_deadline(5000, b).unwrap();
    t.cancel(one_shot);
    assert_eq!(t.pending(), 3);
    t.cancel(periodic);
    assert_eq!(ops.lock().unwrap().last(), Some(&Op::Set(1000)));
    t.cancel(later);
    t.cancel(reused);
    assert_eq!(ops.lock().unwrap().last(), Some(&Op::Cancel));
}

#[test]
fn a_full_timer_refuses_more_deadlines() {
    let (t, _) = timer();
    let handles: Vec<TimerHandle> = (0..MAX_DEADLINES as u64)
        .map(|i| t.set_deadline(1000 + i, count).unwrap())
        .collect();
    assert_eq!(t.set_deadline(5, count), Err(TimerError::Full));
    t.cancel(handles[3]);
    assert!(t.set_deadline(5, count).is_ok());
}

#[test]
fn durations_convert_to_ticks() {
    crate::time::set_clock(62_500_000, 0);
    assert_eq!(
        duration_to_ticks(Duration::from_millis(100)),
        Some(6_250_000)
    );
    assert_eq!(duration_to_ticks(Duration::MAX), Some(u64::MAX));
}
