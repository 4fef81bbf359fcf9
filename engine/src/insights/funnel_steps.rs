//! The per-actor funnel state machines (semantics.md §3.1–§3.4), ported from the behaviour of
//! PostHog's `funnel-udf` (`steps.rs`, `unordered_steps.rs`): plain functions over one actor's
//! events, sorted by time.

use std::collections::VecDeque;

/// One event of an actor, as the funnel sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelEvent {
    /// Microseconds since the epoch.
    pub ts_us: i64,
    /// A per-event id, unique within the actor (events can share a timestamp).
    pub seq: i64,
    /// 1-based steps this event matches; `-s` means an exclusion between steps s−1 and s.
    /// Empty for events that match nothing (kept only by strict funnels).
    pub steps: Vec<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ordered,
    Strict,
    Unordered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExclusionMode {
    /// PostHog: an actor whose best chain was excluded leaves the whole funnel.
    DropActor,
    /// Mixpanel: the exclusion ends the attempt; steps already reached still count.
    EndAttempt,
}

/// What the machine found for one actor.
#[derive(Debug, Clone, PartialEq)]
pub struct ActorResult {
    /// Furthest 1-based step reached (0 = never entered); None when the best chain was
    /// excluded (the actor is dropped from every step).
    pub reached: Option<usize>,
    /// Seconds between consecutive steps of the reported chain (len = reached − 1).
    pub step_times: Vec<f64>,
    /// When the reported chain began (its step-1 event), µs.
    pub entered_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct Chain {
    /// The chain's start (its step-1 event time); None = unset.
    start: Option<i64>,
    excluded: bool,
    /// Event times of the steps reached, in order.
    times: Vec<i64>,
    seqs: Vec<i64>,
}

/// Run the funnel for one actor. `window_us` is inclusive, measured from the chain's step 1.
pub fn run(
    events: &[FunnelEvent],
    n_steps: usize,
    window_us: i64,
    order: Order,
    exclusions: ExclusionMode,
) -> ActorResult {
    match order {
        Order::Unordered => unordered(events, n_steps, window_us),
        _ => ordered(
            events,
            n_steps,
            window_us,
            order == Order::Strict,
            exclusions,
        ),
    }
}

fn result(k: usize, chain: &Chain) -> ActorResult {
    if k == 0 {
        return ActorResult {
            reached: Some(0),
            step_times: Vec::new(),
            entered_at: None,
        };
    }
    ActorResult {
        reached: (!chain.excluded).then_some(k),
        step_times: chain
            .times
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 / 1e6)
            .collect(),
        entered_at: chain.start,
    }
}

fn ordered(
    events: &[FunnelEvent],
    n: usize,
    window_us: i64,
    strict: bool,
    exclusions: ExclusionMode,
) -> ActorResult {
    let mut entered: Vec<Chain> = vec![Chain::default(); n + 1];
    let mut max_step: (usize, Chain) = (0, Chain::default());
    let mut i = 0;
    while i < events.len() {
        // A group of events at the same instant.
        let mut j = i + 1;
        while j < events.len() && events[j].ts_us == events[i].ts_us {
            j += 1;
        }
        let group = &events[i..j];
        let ts = group[0].ts_us;
        entered[0] = Chain {
            start: Some(ts),
            ..Default::default()
        };
        if group.iter().all(|e| e.steps == group[0].steps) {
            for e in group {
                step_event(
                    e,
                    &e.steps,
                    &mut entered,
                    &mut max_step,
                    window_us,
                    false,
                    exclusions,
                );
                if strict {
                    for (k, ch) in entered.iter_mut().enumerate().skip(1) {
                        if !e.steps.contains(&(k as i32)) {
                            *ch = Chain::default();
                        }
                    }
                }
                if entered[n].start.is_some() {
                    return result(max_step.0, &max_step.1);
                }
            }
        } else {
            // Different steps at one instant: every (event, step) pair in step order, an
            // event never used twice in a chain, no strict reset (steps.rs).
            let mut pairs: Vec<(i32, &FunnelEvent)> = group
                .iter()
                .flat_map(|e| e.steps.iter().map(move |s| (*s, e)))
                .collect();
            pairs.sort_by_key(|(s, e)| (s.unsigned_abs(), *s > 0, e.seq));
            for (s, e) in pairs {
                step_event(
                    e,
                    &[s],
                    &mut entered,
                    &mut max_step,
                    window_us,
                    true,
                    exclusions,
                );
                if entered[n].start.is_some() {
                    return result(max_step.0, &max_step.1);
                }
            }
        }
        i = j;
    }
    result(max_step.0, &max_step.1)
}

fn step_event(
    e: &FunnelEvent,
    steps: &[i32],
    entered: &mut [Chain],
    max_step: &mut (usize, Chain),
    window_us: i64,
    multiple: bool,
    exclusions: ExclusionMode,
) {
    let mut order: Vec<i32> = steps.to_vec();
    // Descending: one event cannot advance two steps.
    order.sort_by_key(|s| std::cmp::Reverse(s.unsigned_abs()));
    for s in order {
        let exclusion = s < 0;
        let k = s.unsigned_abs() as usize;
        if k == 0 || k >= entered.len() {
            continue;
        }
        let prev = &entered[k - 1];
        let Some(start) = prev.start else { continue };
        let in_window = e.ts_us - start <= window_us;
        let already = entered[k].start.is_some() && entered[k].start == prev.start;
        if !in_window || already {
            continue;
        }
        if exclusion {
            match exclusions {
                ExclusionMode::DropActor => {
                    if !entered[k - 1].excluded {
                        entered[k - 1].excluded = true;
                        if max_step.0 == k - 1
                            && max_step.1.start.is_some_and(|m| e.ts_us - m <= window_us)
                        {
                            max_step.1.excluded = true;
                        }
                    }
                }
                ExclusionMode::EndAttempt => {
                    for ch in entered.iter_mut().skip(1) {
                        *ch = Chain::default();
                    }
                }
            }
            continue;
        }
        if multiple && prev.seqs.contains(&e.seq) {
            continue;
        }
        if prev.excluded {
            continue;
        }
        let mut next = prev.clone();
        next.times.push(e.ts_us);
        next.seqs.push(e.seq);
        entered[k] = next;
        if k > max_step.0 || (k == max_step.0 && max_step.1.excluded) {
            *max_step = (k, entered[k].clone());
        }
    }
}

/// Any order (unordered_steps.rs): one deque per step; events older than the window fall
/// out; an exclusion clears the attempt in progress but never removes the actor.
fn unordered(events: &[FunnelEvent], n: usize, window_us: i64) -> ActorResult {
    let mut deques: Vec<VecDeque<i64>> = vec![VecDeque::new(); n];
    let mut best: (usize, Vec<i64>) = (0, Vec::new());
    let record = |deques: &[VecDeque<i64>], best: &mut (usize, Vec<i64>)| {
        let mut fronts: Vec<i64> = deques.iter().filter_map(|d| d.front().copied()).collect();
        if fronts.len() > best.0 {
            fronts.sort_unstable();
            *best = (fronts.len(), fronts);
        }
    };
    for e in events {
        loop {
            let complete = deques.iter().all(|d| !d.is_empty());
            let oldest = deques
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.front().map(|t| (*t, i)))
                .min();
            match oldest {
                Some((t, i)) if complete || t + window_us < e.ts_us => {
                    record(&deques, &mut best);
                    deques[i].pop_front();
                }
                _ => break,
            }
        }
        if e.steps.iter().any(|s| *s < 0) {
            for d in &mut deques {
                d.clear();
            }
            continue;
        }
        // The matching step whose latest event is oldest (empty deques first).
        let target = e
            .steps
            .iter()
            .filter(|s| **s >= 1 && (**s as usize) <= n)
            .map(|s| *s as usize - 1)
            .min_by_key(|&i| deques[i].back().copied().unwrap_or(i64::MIN));
        if let Some(i) = target {
            deques[i].push_back(e.ts_us);
            record(&deques, &mut best);
        }
    }
    record(&deques, &mut best);
    ActorResult {
        reached: Some(best.0),
        step_times: best
            .1
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 / 1e6)
            .collect(),
        entered_at: best.1.first().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn ev(seq: i64, secs: i64, steps: &[i32]) -> FunnelEvent {
        FunnelEvent {
            ts_us: 1_700_000_000 * S + secs * S,
            seq,
            steps: steps.to_vec(),
        }
    }

    fn go(events: &[FunnelEvent], n: usize, window_s: i64, order: Order) -> ActorResult {
        run(events, n, window_s * S, order, ExclusionMode::DropActor)
    }

    #[test]
    fn tv_fun_4_exclusion_removes_the_actor_and_a_clean_retry_restores_them() {
        // A→B, exclusion X between steps 1 and 2 (step value -2).
        let r = go(
            &[ev(1, 100, &[1]), ev(2, 200, &[-2]), ev(3, 300, &[2])],
            2,
            14 * 86_400,
            Order::Ordered,
        );
        assert_eq!(r.reached, None);
        let r = go(
            &[
                ev(1, 100, &[1]),
                ev(2, 200, &[-2]),
                ev(3, 300, &[1]),
                ev(4, 400, &[2]),
            ],
            2,
            14 * 86_400,
            Order::Ordered,
        );
        assert_eq!((r.reached, r.step_times.clone()), (Some(2), vec![100.0]));
        let r = go(
            &[ev(1, 100, &[1]), ev(2, 200, &[2]), ev(3, 300, &[-2])],
            2,
            14 * 86_400,
            Order::Ordered,
        );
        assert_eq!(r.reached, Some(2));
        // Mixpanel: the exclusion ends the attempt; the user still counts at step 1.
        let r = run(
            &[ev(1, 100, &[1]), ev(2, 200, &[-2]), ev(3, 300, &[2])],
            2,
            14 * 86_400 * S,
            Order::Ordered,
            ExclusionMode::EndAttempt,
        );
        assert_eq!(r.reached, Some(1));
    }

    #[test]
    fn tv_fun_5_latest_step_1_is_the_chain_start() {
        let r = go(
            &[ev(1, 0, &[1]), ev(2, 100, &[1]), ev(3, 150, &[2])],
            2,
            60,
            Order::Ordered,
        );
        assert_eq!((r.reached, r.step_times), (Some(2), vec![50.0]));
        let r = go(
            &[ev(1, 0, &[1]), ev(2, 10, &[1]), ev(3, 20, &[2])],
            2,
            60,
            Order::Ordered,
        );
        assert_eq!((r.reached, r.step_times), (Some(2), vec![10.0]));
    }

    #[test]
    fn tv_fun_6_window_from_step_1_not_the_previous_step() {
        let r = go(
            &[
                ev(1, 0, &[1]),
                ev(2, 10, &[2]),
                ev(3, 50, &[1]),
                ev(4, 70, &[3]),
            ],
            3,
            60,
            Order::Ordered,
        );
        assert_eq!(r.reached, Some(2));
    }

    #[test]
    fn tv_fun_7_strict_vs_ordered() {
        let events = [ev(1, 0, &[1]), ev(2, 10, &[]), ev(3, 20, &[2])];
        assert_eq!(go(&events, 2, 60, Order::Ordered).reached, Some(2));
        assert_eq!(go(&events, 2, 60, Order::Strict).reached, Some(1));
    }

    #[test]
    fn tv_fun_8_ties_resolve_in_step_order() {
        let r = go(&[ev(1, 5, &[2]), ev(2, 5, &[1])], 2, 60, Order::Ordered);
        assert_eq!((r.reached, r.step_times), (Some(2), vec![0.0]));
    }

    #[test]
    fn tv_fun_9_duplicate_step_needs_two_events() {
        assert_eq!(
            go(&[ev(1, 0, &[1, 2])], 2, 60, Order::Ordered).reached,
            Some(1)
        );
        let r = go(
            &[ev(1, 0, &[1, 2]), ev(2, 5, &[1, 2])],
            2,
            60,
            Order::Ordered,
        );
        assert_eq!((r.reached, r.step_times), (Some(2), vec![5.0]));
    }

    #[test]
    fn unordered_counts_steps_in_any_order_and_exclusions_only_end_the_attempt() {
        let r = go(&[ev(1, 0, &[2]), ev(2, 10, &[1])], 2, 60, Order::Unordered);
        assert_eq!((r.reached, r.step_times), (Some(2), vec![10.0]));
        // Outside the window the older event falls out.
        assert_eq!(
            go(&[ev(1, 0, &[2]), ev(2, 100, &[1])], 2, 60, Order::Unordered).reached,
            Some(1)
        );
        let r = go(
            &[ev(1, 0, &[1]), ev(2, 5, &[-2]), ev(3, 10, &[2])],
            2,
            60,
            Order::Unordered,
        );
        assert_eq!(r.reached, Some(1));
    }
}
