//! Property tests: the HLC guarantees hold for arbitrary call sequences and physical times.

use std::time::{Duration, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use vergent_hlc::{Ceiling, ClockError, Hlc, HlcConfig, Timestamp};

const T0: u64 = 1_795_440_472_123;
const MAX_OFFSET_MS: u64 = 500;

/// Inputs stay this far below the end of the 48-bit range so a few hundred
/// calls cannot exhaust the timestamp space, which would (by design) panic.
const SAFE_MAX_PHYSICAL: u64 = Timestamp::MAX_PHYSICAL_MS - 1_000_000;

/// Last millisecond that humantime can format (end of year 9999).
const HUMANTIME_MAX_MS: u64 = 253_402_300_800_000 - 1;

fn config() -> HlcConfig {
    HlcConfig {
        max_offset_ms: MAX_OFFSET_MS,
    }
}

/// Mostly a narrow band, so calls interleave and collide within a
/// millisecond, plus the whole range including values past 48 bits.
fn physical() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (T0 - 2_000)..(T0 + 2_000),
        1 => 0..=Timestamp::MAX_PHYSICAL_MS,
        1 => any::<u64>(),
    ]
}

fn near_physical() -> impl Strategy<Value = u64> {
    (T0 - 2_000)..(T0 + 2_000)
}

/// Remote or stored timestamps, with logical counters up to `max_logical`.
fn timestamp(max_logical: u16) -> impl Strategy<Value = Timestamp> {
    let physical = prop_oneof![
        9 => (T0 - 3_000)..(T0 + 3_000),
        1 => 0..=SAFE_MAX_PHYSICAL,
    ];
    (physical, 0..=max_logical).prop_map(|(p, l)| Timestamp::new(p, l))
}

#[derive(Clone, Debug)]
enum Op {
    Now(u64),
    Update(u64, Timestamp),
    Observe(Timestamp),
}

fn op(max_logical: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        physical().prop_map(Op::Now),
        (physical(), timestamp(max_logical)).prop_map(|(p, r)| Op::Update(p, r)),
        timestamp(max_logical).prop_map(Op::Observe),
    ]
}

/// Only events that carry local physical time, within the narrow band.
fn timed_op(max_logical: u16) -> impl Strategy<Value = Op> {
    let remote = (near_physical(), 0..=max_logical).prop_map(|(p, l)| Timestamp::new(p, l));
    prop_oneof![
        near_physical().prop_map(Op::Now),
        (near_physical(), remote).prop_map(|(p, r)| Op::Update(p, r)),
    ]
}

/// Runs `op`, returning the timestamp issued, if any.
fn apply(hlc: &mut Hlc, op: &Op) -> Option<Timestamp> {
    match *op {
        Op::Now(pt) => Some(hlc.now(pt)),
        Op::Update(pt, remote) => hlc.update(pt, remote).ok(),
        Op::Observe(seen) => {
            hlc.observe(seen);
            None
        }
    }
}

/// Drives a clock and its ceiling the way a node would, returning every
/// timestamp issued and the last ceiling persisted.
fn run_with_ceiling(
    persisted: Timestamp,
    window_ms: u64,
    ops: &[Op],
) -> Result<(Vec<Timestamp>, Timestamp), TestCaseError> {
    let half = window_ms.max(1) / 2;
    let mut hlc = Hlc::with_floor(config(), persisted);
    let mut ceiling = Ceiling::new(persisted, window_ms);
    let mut durable = persisted;
    let mut issued = Vec::new();
    for op in ops {
        let Some(ts) = apply(&mut hlc, op) else {
            continue;
        };
        let before = ceiling.current();
        match ceiling.check(ts) {
            Some(next) => {
                prop_assert!(ts.physical_ms() + half >= before.physical_ms());
                prop_assert!(next > before, "ceiling must only move up");
                durable = next;
            }
            None => prop_assert!(ts.physical_ms() + half < before.physical_ms()),
        }
        prop_assert_eq!(ceiling.current(), durable);
        prop_assert!(ts < durable, "{} used at or above ceiling {}", ts, durable);
        issued.push(ts);
    }
    Ok((issued, durable))
}

proptest! {
    #[test]
    fn timestamps_strictly_increase_under_any_call_sequence(
        floor in timestamp(u16::MAX),
        ops in vec(op(u16::MAX), 1..100),
    ) {
        let mut hlc = Hlc::with_floor(config(), floor);
        // Everything the clock has issued, been floored at, observed or accepted.
        let mut high = floor;
        for op in &ops {
            match *op {
                Op::Now(pt) => {
                    let ts = hlc.now(pt);
                    prop_assert!(ts > high, "now({}) gave {} after {}", pt, ts, high);
                    high = ts;
                }
                Op::Update(pt, remote) => {
                    if let Ok(ts) = hlc.update(pt, remote) {
                        prop_assert!(ts > high && ts > remote);
                        high = ts;
                    }
                }
                Op::Observe(seen) => {
                    hlc.observe(seen);
                    high = high.max(seen);
                }
            }
            prop_assert_eq!(hlc.last(), high);
        }
    }

    #[test]
    fn with_floor_never_issues_at_or_below_floor(
        floor in timestamp(u16::MAX),
        ops in vec(op(u16::MAX), 1..100),
    ) {
        let mut hlc = Hlc::with_floor(config(), floor);
        for op in &ops {
            if let Some(ts) = apply(&mut hlc, op) {
                prop_assert!(ts > floor);
            }
        }
    }

    #[test]
    fn message_received_via_update_orders_every_later_receiver_timestamp_after_it(
        a_ops in vec(op(u16::MAX), 0..30),
        b_ops_before in vec(op(u16::MAX), 0..30),
        b_ops_after in vec(op(u16::MAX), 1..30),
        send_pt in physical(),
        skew in -(MAX_OFFSET_MS as i64)..=5_000,
    ) {
        let mut a = Hlc::new(config());
        for op in &a_ops {
            apply(&mut a, op);
        }
        let sent = a.now(send_pt);

        let mut b = Hlc::new(config());
        for op in &b_ops_before {
            apply(&mut b, op);
        }
        // Any skew no worse than -max_offset is within the accepted window.
        let recv_pt = sent.physical_ms().saturating_add_signed(skew);
        let received = b.update(recv_pt, sent);
        prop_assert!(matches!(received, Ok(ts) if ts > sent), "{:?}", received);
        for op in &b_ops_after {
            if let Some(ts) = apply(&mut b, op) {
                prop_assert!(ts > sent);
            }
            prop_assert!(b.last() > sent);
        }
    }

    /// With logical counters kept far from overflow (inputs <= 1000, fewer
    /// than 100 calls), the physical component after every call is exactly
    /// H = the largest of: the floor, every physical time passed to `now` or
    /// to an accepted `update` (clamped to 48 bits), every accepted remote's
    /// and every observed timestamp's physical part. Refused updates do not
    /// count. So the clock never runs ahead of what it was shown, nor lags it.
    #[test]
    fn physical_component_equals_largest_physical_input_absent_logical_overflow(
        floor in timestamp(1_000),
        ops in vec(op(1_000), 1..100),
    ) {
        let mut hlc = Hlc::with_floor(config(), floor);
        let mut high = floor.physical_ms();
        for op in &ops {
            let clamp = |pt: u64| pt.min(Timestamp::MAX_PHYSICAL_MS);
            match *op {
                Op::Now(pt) => {
                    hlc.now(pt);
                    high = high.max(clamp(pt));
                }
                Op::Update(pt, remote) => {
                    if hlc.update(pt, remote).is_ok() {
                        high = high.max(clamp(pt)).max(remote.physical_ms());
                    }
                }
                Op::Observe(seen) => {
                    hlc.observe(seen);
                    high = high.max(seen.physical_ms());
                }
            }
            prop_assert_eq!(hlc.last().physical_ms(), high);
        }
    }

    /// For a clock fed only by `now` and `update` (no floor, no `observe`)
    /// and without logical overflow: each accepted update returns a physical
    /// component <= max(previous physical component, pt + max_offset), and
    /// every timestamp's physical component is <= L + max_offset, where L is
    /// the largest local physical time passed to `now` or an accepted
    /// `update` so far.
    #[test]
    fn accepted_remotes_pull_the_clock_at_most_max_offset_ahead_of_local_time(
        ops in vec(
            prop_oneof![
                physical().prop_map(Op::Now),
                (physical(), timestamp(1_000)).prop_map(|(p, r)| Op::Update(p, r)),
                (physical(), any::<u16>())
                    .prop_map(|(p, lead)| Op::Update(p, Timestamp::new(
                        p.min(SAFE_MAX_PHYSICAL) + u64::from(lead % 1_000), 0))),
            ],
            1..100,
        ),
    ) {
        let mut hlc = Hlc::new(config());
        let mut local_high = 0_u64;
        for op in &ops {
            let previous = hlc.last().physical_ms();
            match *op {
                Op::Now(pt) => {
                    hlc.now(pt);
                    local_high = local_high.max(pt);
                }
                Op::Update(pt, remote) => {
                    if let Ok(ts) = hlc.update(pt, remote) {
                        prop_assert!(
                            ts.physical_ms() <= previous.max(pt.saturating_add(MAX_OFFSET_MS))
                        );
                        local_high = local_high.max(pt);
                    }
                }
                Op::Observe(_) => unreachable!("not generated"),
            }
            prop_assert!(
                hlc.last().physical_ms() <= local_high.saturating_add(MAX_OFFSET_MS)
            );
        }
    }

    #[test]
    fn update_is_refused_exactly_when_remote_leads_by_more_than_max_offset(
        ops in vec(op(u16::MAX), 0..50),
        pt in prop_oneof![near_physical(), 0..=SAFE_MAX_PHYSICAL],
        // Weighted onto the boundary, where an off-by-one would hide.
        lead in prop_oneof![
            (MAX_OFFSET_MS as i64 - 1)..=(MAX_OFFSET_MS as i64 + 1),
            -1_000_i64..=1_500,
        ],
        logical in any::<u16>(),
    ) {
        let mut hlc = Hlc::new(config());
        for op in &ops {
            apply(&mut hlc, op);
        }
        let remote = Timestamp::new(pt.saturating_add_signed(lead), logical);
        let too_far = remote.physical_ms() > pt + MAX_OFFSET_MS;
        let before = hlc.clone();
        let result = hlc.update(pt, remote);
        if too_far {
            prop_assert_eq!(
                result,
                Err(ClockError::RemoteTooFarAhead {
                    remote,
                    local_physical_ms: pt,
                    max_offset_ms: MAX_OFFSET_MS,
                })
            );
        } else {
            prop_assert!(result.is_ok());
        }
        if result.is_err() {
            // Unchanged means the same state, hence the same future.
            prop_assert_eq!(&hlc, &before);
            prop_assert_eq!(hlc.now(pt), before.clone().now(pt));
        }
    }

    #[test]
    fn logical_overflow_rolls_into_next_millisecond_without_repeating(
        start_logical in 65_000..=u16::MAX,
        calls in 1..3_000_u64,
        behind in 0..100_u64,
    ) {
        let floor = Timestamp::new(T0, start_logical);
        let mut hlc = Hlc::with_floor(config(), floor);
        for i in 1..=calls {
            let ts = hlc.now(T0 - behind);
            // Each event takes the very next value: no gaps, no repeats,
            // and one borrowed millisecond per 65 536 events.
            prop_assert_eq!(ts.as_u64(), floor.as_u64() + i);
            prop_assert_eq!(ts.physical_ms(), T0 + (u64::from(start_logical) + i) / 65_536);
        }
    }

    #[test]
    fn display_then_parse_round_trips_every_timestamp(raw in any::<u64>()) {
        let ts = Timestamp::from_u64(raw);
        prop_assert_eq!(ts.to_string().parse::<Timestamp>(), Ok(ts));
    }

    #[test]
    fn raw_decimal_parses_to_the_same_timestamp(raw in any::<u64>()) {
        prop_assert_eq!(raw.to_string().parse::<Timestamp>(), Ok(Timestamp::from_u64(raw)));
    }

    #[test]
    fn display_agrees_with_humantime_through_year_9999(
        physical in 0..=HUMANTIME_MAX_MS,
        logical in any::<u16>(),
    ) {
        let ts = Timestamp::new(physical, logical);
        let instant = UNIX_EPOCH + Duration::from_millis(physical);
        let expected = format!("{}+{logical}", humantime::format_rfc3339_millis(instant));
        let shown = ts.to_string();
        prop_assert_eq!(&shown, &expected);
        let (rfc3339, _) = shown.rsplit_once('+').expect("has a logical suffix");
        prop_assert_eq!(humantime::parse_rfc3339(rfc3339), Ok(instant));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = s.parse::<Timestamp>();
    }

    #[test]
    fn parse_never_panics_on_near_miss_text(
        raw in any::<u64>(),
        at in any::<prop::sample::Index>(),
        replacement in proptest::char::range('+', ':'),
    ) {
        let mut text: Vec<char> = Timestamp::from_u64(raw).to_string().chars().collect();
        let i = at.index(text.len());
        text[i] = replacement;
        let text: String = text.into_iter().collect();
        let _ = text.parse::<Timestamp>();
    }

    #[test]
    fn big_endian_bytes_sort_like_timestamps(a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (Timestamp::from_u64(a), Timestamp::from_u64(b));
        prop_assert_eq!(a.to_be_bytes().cmp(&b.to_be_bytes()), a.cmp(&b));
        prop_assert_eq!(Timestamp::from_be_bytes(a.to_be_bytes()), a);
    }

    #[test]
    fn timestamps_in_use_stay_below_the_persisted_ceiling(
        persisted in near_physical().prop_map(|p| Timestamp::new(p - 3_000, 0)),
        window_ms in 0..5_000_u64,
        ops in vec(timed_op(u16::MAX), 1..200),
    ) {
        run_with_ceiling(persisted, window_ms, &ops)?;
    }

    #[test]
    fn restart_at_persisted_ceiling_issues_above_everything_issued_before(
        persisted in near_physical().prop_map(|p| Timestamp::new(p - 3_000, 0)),
        window_ms in 0..5_000_u64,
        ops in vec(timed_op(u16::MAX), 1..200),
        restart_pt in physical(),
    ) {
        let (issued, durable) = run_with_ceiling(persisted, window_ms, &ops)?;
        let mut restarted = Hlc::with_floor(config(), durable);
        let first = restarted.now(restart_pt);
        prop_assert!(issued.iter().all(|&ts| ts < first));
    }
}
