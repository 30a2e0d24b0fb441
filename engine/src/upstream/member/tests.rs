//! The state machine, one transition at a time, with the clock given
//! explicitly (or paused): deterministic, no sockets.

use super::*;
use crate::addr::BackendAddr;
use crate::upstream::outlier::Outcome;

const FAIL: Outcome = Outcome::Failure {
    gateway: false,
    connect: false,
};
const GATEWAY: Outcome = Outcome::Failure {
    gateway: true,
    connect: false,
};
const CONNECT: Outcome = Outcome::Failure {
    gateway: true,
    connect: true,
};

fn member() -> Member {
    Member::new(
        Arc::new(Backend::new(BackendAddr(([127, 0, 0, 1], 1).into()), 1)),
        Origin::Config,
    )
}

fn passive() -> Passive {
    Passive {
        consecutive_5xx: 3,
        ejection: Duration::from_secs(10),
        max_ejection: Duration::from_secs(25),
        half_open_trials: 1,
        half_open_successes: 2,
        ..Passive::default()
    }
}

/// Records `n` outcomes; whether the last one asked the machine.
fn record(m: &Member, p: &Passive, outcome: Outcome, n: u32) -> bool {
    (0..n).fold(false, |_, _| m.backend.record(outcome, p))
}

#[test]
fn leaves_after_fall_failures_and_returns_after_rise_successes() {
    let mut m = member();
    m.record_check(false, "refused".into(), 2, 3);
    m.record_check(false, "refused".into(), 2, 3);
    assert_eq!(m.state, MemberState::Healthy);
    m.record_check(false, "refused".into(), 2, 3);
    assert_eq!(m.state, MemberState::Unhealthy);
    assert!(m.reason.contains("refused"));
    m.record_check(true, "200".into(), 2, 3);
    assert_eq!(m.state, MemberState::Unhealthy);
    m.record_check(true, "200".into(), 2, 3);
    assert_eq!(m.state, MemberState::Healthy);
    let v = m.view(Duration::ZERO, Instant::now());
    assert_eq!(v.checks.len(), 5);
    assert_eq!(v.transitions.len(), 2);
    assert_eq!(v.transitions[1].from, MemberState::Unhealthy);
    assert!(v.transitions[1].reason.contains("passed 2"));
}

#[test]
fn consecutive_5xx_open_then_half_open_then_close_after_n_trials() {
    let (mut m, p, now) = (member(), passive(), Instant::now());
    assert!(!record(&m, &p, FAIL, 2), "below the threshold: no ask");
    assert!(m.backend.record(FAIL, &p));
    m.on_ask(&p, true, now);
    assert_eq!(m.state, MemberState::Ejected);
    assert!(
        m.reason.starts_with("3 consecutive failures"),
        "{}",
        m.reason
    );
    assert!(m.reason.ends_with("ejected for 10s"), "{}", m.reason);
    assert!(!m.cooled(now + Duration::from_secs(9)));
    assert!(m.cooled(now + Duration::from_secs(10)));
    m.half_open(&p);
    assert_eq!(m.state, MemberState::HalfOpen);

    // One trial at a time; a trial succeeds with its whole response, not
    // with its head (`InFlight::succeed`).
    let b = m.backend.clone();
    let mut t1 = b.begin();
    assert!(t1.admitted());
    assert!(!b.begin().admitted(), "a second trial at once is refused");
    assert!(!b.record(Outcome::Success, &p), "a head is no verdict");
    t1.succeed();
    m.on_ask(&p, true, now);
    assert_eq!(m.state, MemberState::HalfOpen, "1 of 2 successes");
    let mut t2 = b.begin();
    assert!(t2.admitted(), "the first trial's place is free");
    t2.succeed();
    m.on_ask(&p, true, now);
    assert_eq!(m.state, MemberState::Healthy);
    assert_eq!(m.reason, "2 trial requests succeeded");
    assert!(
        b.begin().admitted() && b.begin().admitted(),
        "closed: no cap"
    );
    let v = m.view(Duration::ZERO, now);
    let path: Vec<MemberState> = v.transitions.iter().map(|t| t.to).collect();
    use MemberState::*;
    assert_eq!(path, vec![Ejected, HalfOpen, Healthy]);
    assert_eq!((v.breaker.trials, v.breaker.trial_successes), (2, 2));
    assert_eq!(v.breaker.open_count, 1);
}

#[test]
fn a_failed_trial_reopens_with_a_longer_cooldown() {
    let (mut m, p, now) = (member(), passive(), Instant::now());
    record(&m, &p, FAIL, 3);
    m.on_ask(&p, true, now);
    m.half_open(&p);
    let b = m.backend.clone();
    let t = b.begin();
    assert!(t.admitted());
    assert!(b.record(FAIL, &p), "a failed trial asks at once");
    drop(t);
    assert!(
        !b.begin().admitted(),
        "no trial after a failed one, before the machine acts"
    );
    m.on_ask(&p, true, now);
    assert_eq!(m.state, MemberState::Ejected);
    assert_eq!(m.reason, "a trial request failed; ejected for 20s");
    assert!(!m.cooled(now + Duration::from_secs(19)));
    m.half_open(&p);
    assert!(b.begin().admitted(), "a new half-open period admits again");
    m.eject(&p, "again", now);
    assert!(m.reason.ends_with("25s"), "capped: {}", m.reason);
    assert_eq!(m.view(Duration::ZERO, now).breaker.trial_failures, 1);
}

#[test]
fn a_request_begun_before_the_ejection_takes_no_trial_place() {
    let (mut m, p, now) = (member(), passive(), Instant::now());
    let b = m.backend.clone();
    // A long stream (SSE) started while the backend was healthy.
    let stream = b.begin();
    record(&m, &p, FAIL, 3);
    m.on_ask(&p, true, now);
    m.half_open(&p);
    assert!(b.trial_room());
    let trial = b.begin();
    assert!(trial.admitted(), "the old stream is not a trial");
    assert!(!b.begin().admitted(), "one trial at a time still");
    drop(trial);
    assert!(b.begin().admitted(), "the trial's end frees its place");
    drop(stream);
}

#[test]
fn a_trial_unfinished_past_the_half_open_timeout_reopens() {
    let (mut m, now) = (member(), Instant::now());
    let p = Passive {
        half_open_timeout: Duration::from_secs(30),
        ..passive()
    };
    record(&m, &p, FAIL, 3);
    m.on_ask(&p, true, now);
    m.half_open(&p);
    let b = m.backend.clone();
    assert!(
        !m.trial_overdue(&p, now + Duration::from_secs(60)),
        "no trial: no clock"
    );
    let stuck = b.begin();
    assert!(stuck.admitted());
    let t0 = now + Duration::from_secs(60);
    assert!(!m.trial_overdue(&p, t0));
    assert!(!m.trial_overdue(&p, t0 + Duration::from_secs(29)));
    assert!(m.trial_overdue(&p, t0 + Duration::from_secs(30)));

    let mut members = super::super::members::Members::default();
    members.insert(m);
    members.tick(t0 + Duration::from_secs(31), &p, Duration::ZERO);
    let m = members.get(b.addr).expect("member");
    assert_eq!(m.state, MemberState::Ejected);
    assert!(
        m.reason
            .starts_with("a trial request did not finish within 30000ms"),
        "{}",
        m.reason
    );
    // It ends at last: it changes nothing for the next period.
    drop(stuck);
    assert_eq!(b.gate.trials_in_flight(), 0);
}

#[test]
fn gateway_and_connect_streaks_eject_with_their_reasons() {
    let now = Instant::now();
    let p = Passive {
        consecutive_5xx: 10,
        consecutive_gateway_errors: 3,
        consecutive_connect_failures: 2,
        ..passive()
    };
    let mut m = member();
    assert!(!record(&m, &p, GATEWAY, 2));
    assert!(!m.backend.record(FAIL, &p), "a 500 ends the gateway streak");
    assert!(record(&m, &p, GATEWAY, 3));
    m.on_ask(&p, true, now);
    assert!(
        m.reason.starts_with("3 consecutive gateway errors"),
        "{}",
        m.reason
    );

    // (A connect failure is a gateway error too: that detector off here.)
    let p = Passive {
        consecutive_gateway_errors: 0,
        ..p
    };
    let mut m = member();
    assert!(!m.backend.record(CONNECT, &p));
    assert!(
        !m.backend.record(GATEWAY, &p),
        "an answer ends the connect streak"
    );
    assert!(!m.backend.record(CONNECT, &p));
    assert!(m.backend.record(CONNECT, &p));
    m.on_ask(&p, true, now);
    assert!(
        m.reason.starts_with("2 consecutive connect failures"),
        "{}",
        m.reason
    );

    let mut m = member();
    record(&m, &p, GATEWAY, 2);
    assert!(!m.backend.record(Outcome::Success, &p));
    assert_eq!(
        m.backend.streaks(),
        StreakCounts::default(),
        "a success ends all"
    );
    m.on_ask(&p, true, now);
    assert_eq!(
        m.state,
        MemberState::Healthy,
        "an ask with no streak crossed"
    );
}

#[test]
fn the_cap_keeps_a_backend_in_and_its_streak_starts_over() {
    let (mut m, p, now) = (member(), passive(), Instant::now());
    record(&m, &p, FAIL, 3);
    m.on_ask(&p, false, now);
    assert_eq!(m.state, MemberState::Healthy);
    assert!(
        !m.backend.record(FAIL, &p),
        "counted afresh: no ask per failure"
    );
}

#[test]
fn the_error_rate_ejects_past_its_minimum_volume() {
    let p = Passive {
        consecutive_5xx: 0,
        error_rate_percent: 50,
        error_rate_min_requests: 10,
        error_rate_window: Duration::from_secs(10),
        ..passive()
    };
    let (mut m, t0) = (member(), Instant::now());
    let b = m.backend.clone();
    assert_eq!(m.sample_errors(&p, t0), None);
    for _ in 0..6 {
        drop(b.begin());
        b.record(FAIL, &p);
    }
    assert_eq!(
        m.sample_errors(&p, t0 + Duration::from_secs(1)),
        None,
        "6 < 10"
    );
    for _ in 0..6 {
        drop(b.begin());
        b.record(FAIL, &p);
    }
    let cause = m.sample_errors(&p, t0 + Duration::from_secs(2)).unwrap();
    m.eject(&p, cause, t0);
    assert!(
        m.reason.starts_with("error rate 100% over 12 requests"),
        "{}",
        m.reason
    );
    m.half_open(&p);
    assert_eq!(
        m.sample_errors(&p, t0 + Duration::from_secs(3)),
        None,
        "not sampled out of rotation"
    );
}

#[test]
fn a_half_open_backend_failing_its_checks_is_unhealthy() {
    let (mut m, p, now) = (member(), passive(), Instant::now());
    record(&m, &p, FAIL, 3);
    m.on_ask(&p, true, now);
    m.half_open(&p);
    m.record_check(false, "refused".into(), 1, 1);
    assert_eq!(m.state, MemberState::Unhealthy);
    assert!(m.backend.begin().admitted(), "the trial gate is gone");
    assert!(!m.backend.record(Outcome::Success, &p), "no longer a trial");
}

#[tokio::test(start_paused = true)]
async fn a_returning_backend_ramps_its_weight() {
    let slow = Duration::from_secs(10);
    let mut m = Member::new(
        Arc::new(Backend::new(BackendAddr(([127, 0, 0, 1], 1).into()), 3)),
        Origin::Config,
    );
    assert_eq!(m.ramp_weight(Instant::now(), slow), 30, "startup: full");
    m.set_state(MemberState::Unhealthy, "down");
    m.set_state(MemberState::Healthy, "up");
    assert_eq!(m.ramp_weight(Instant::now(), slow), 3, "a tenth at first");
    assert!(m.advance_ramp(Instant::now(), slow));
    tokio::time::advance(Duration::from_millis(5_500)).await;
    assert_eq!(m.ramp_weight(Instant::now(), slow), 18);
    assert_eq!(m.view(slow, Instant::now()).effective_weight, 1.8);
    tokio::time::advance(slow).await;
    assert!(m.advance_ramp(Instant::now(), slow));
    assert!(!m.ramping(Instant::now(), slow));
    let joining = Member::joining(m.backend.clone(), Origin::Registered);
    assert!(joining.ramping(Instant::now(), slow), "added later: ramps");
}
