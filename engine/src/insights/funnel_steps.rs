//! The per-actor funnel state machines (semantics.md §3.1–§3.4, §3.7), ported from the
//! behaviour of PostHog's `funnel-udf` (`steps.rs`, `unordered_steps.rs`): plain functions
//! over one actor's events, sorted by time. Optional steps and per-step windows follow
//! `steps.rs`: a step looks back through optional steps for the nearest chain it can extend.

use std::collections::VecDeque;
use std::sync::Arc;

/// One event of an actor, as the funnel sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelEvent {
    /// Microseconds since the epoch.
    pub ts_us: i64,
    /// A per-event id, unique within the actor (events can share a timestamp).
    pub seq: i64,
    /// 1-based steps this event matches; `-s` means an exclusion between steps s−1 and s.
    /// Empty for events that match nothing (kept only by strict funnels). Shared: events
    /// are copied per breakdown value and partition, their steps are not.
    pub steps: Arc<[i32]>,
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

/// The shape of a funnel as the machine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub n_steps: usize,
    /// Inclusive, measured from the chain's step 1.
    pub window_us: i64,
    pub order: Order,
    pub exclusions: ExclusionMode,
    /// Per 1-based step (index 0 unused): the step may be skipped. Empty: none are optional.
    pub optional: Vec<bool>,
    /// Per 1-based step (index 0 unused): the most time (inclusive) from the previous step
    /// the chain did. Empty: no per-step windows.
    pub step_windows_us: Vec<Option<i64>>,
    /// Only chains whose first event falls in `[from, to)` (µs) count (funnel trends'
    /// entry period). None: any chain.
    pub entry_between: Option<(i64, i64)>,
}

impl Rules {
    pub fn new(n_steps: usize, window_us: i64, order: Order, exclusions: ExclusionMode) -> Self {
        Rules {
            n_steps,
            window_us,
            order,
            exclusions,
            optional: Vec::new(),
            step_windows_us: Vec::new(),
            entry_between: None,
        }
    }

    pub fn is_optional(&self, k: usize) -> bool {
        self.optional.get(k).copied().unwrap_or(false)
    }

    /// Whether a result counts at 1-based step `k`: it did that step if the step is
    /// optional, else it got at least that far (a chain past a required step did it).
    pub fn counts_at(&self, r: &ActorResult, k: usize) -> bool {
        if self.is_optional(k) {
            r.did(k)
        } else {
            r.reached >= k
        }
    }

    fn step_window(&self, k: usize) -> Option<i64> {
        self.step_windows_us.get(k).copied().flatten()
    }

    /// Whether an event can begin a chain (ordered: it matches step 1; any order: any step).
    pub fn is_entry(&self, e: &FunnelEvent) -> bool {
        match self.order {
            Order::Unordered => e.steps.iter().any(|s| *s >= 1),
            _ => e.steps.contains(&1),
        }
    }
}

/// What the machine found for one actor: the reported chain (the first to reach the
/// furthest step).
#[derive(Debug, Clone, PartialEq)]
pub struct ActorResult {
    /// Furthest 1-based step reached (0 = never entered).
    pub reached: usize,
    /// The reported chain was excluded (PostHog drops such actors from every step).
    pub excluded: bool,
    /// When the chain did each step 1..=reached, µs; None for an optional step it skipped.
    pub step_at: Vec<Option<i64>>,
}

impl ActorResult {
    fn none() -> Self {
        ActorResult {
            reached: 0,
            excluded: false,
            step_at: Vec::new(),
        }
    }

    /// When the chain began (its step-1 event), µs.
    pub fn entered_at(&self) -> Option<i64> {
        self.step_at.first().copied().flatten()
    }

    /// When the chain did its last step, µs.
    pub fn last_at(&self) -> Option<i64> {
        self.step_at.iter().rev().flatten().next().copied()
    }

    /// Whether the chain did 1-based step `k` (not skipped it).
    pub fn did(&self, k: usize) -> bool {
        k >= 1 && self.step_at.get(k - 1).is_some_and(|t| t.is_some())
    }

    /// Seconds to each step 2..=reached from the previous step the chain did; None for a
    /// skipped optional step (len = reached − 1).
    pub fn step_times(&self) -> Vec<Option<f64>> {
        let mut last = self.entered_at();
        self.step_at
            .iter()
            .skip(1)
            .map(|t| {
                let d = t.zip(last).map(|(t, l)| (t - l) as f64 / 1e6);
                if t.is_some() {
                    last = *t;
                }
                d
            })
            .collect()
    }

    /// Whether this result ranks above `other` by PostHog's `max_step` rule: further, or as
    /// far where `other` is excluded and this is not. Ties keep the earlier one.
    pub fn beats(&self, other: &ActorResult) -> bool {
        self.reached > other.reached
            || (self.reached == other.reached && other.excluded && !self.excluded)
    }
}

#[derive(Debug, Clone, Default)]
struct Chain {
    /// The chain's start (its step-1 event time); None = unset.
    start: Option<i64>,
    excluded: bool,
    /// Event times of the steps reached, in order; None for a skipped optional step.
    at: Vec<Option<i64>>,
    seqs: Vec<i64>,
}

impl Chain {
    fn last(&self) -> Option<i64> {
        self.at.iter().rev().flatten().next().copied()
    }
}

/// Run the funnel for one actor.
pub fn run(events: &[FunnelEvent], rules: &Rules) -> ActorResult {
    match (rules.order, rules.entry_between) {
        (Order::Unordered, _) => unordered(events, rules),
        (_, None) => ordered(events, rules),
        (_, Some((lo, hi))) => {
            // Only step-1 events inside the entry period may start a chain.
            let events: Vec<FunnelEvent> = events
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    if (e.ts_us < lo || e.ts_us >= hi) && e.steps.contains(&1) {
                        e.steps = e.steps.iter().copied().filter(|s| *s != 1).collect();
                    }
                    e
                })
                .collect();
            ordered(&events, rules)
        }
    }
}

/// Totals: one actor's attempts, in time order. An attempt opens at an entry event (step 1)
/// when none is open. While it is open, later step-1 events restart its chain (the latest
/// entry wins, as for persons) and keep it open; it closes when it converts, or once the
/// window since its latest step-1 event has passed. Its result is the machine's over its
/// events; the next attempt opens at the first entry after the conversion (or after the
/// close).
pub fn attempts(events: &[FunnelEvent], rules: &Rules) -> Vec<ActorResult> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(s) = (i..events.len()).find(|&j| rules.is_entry(&events[j])) {
        let mut latest = events[s].ts_us;
        let mut end = events.len();
        for (j, e) in events.iter().enumerate().skip(s + 1) {
            if e.ts_us > latest.saturating_add(rules.window_us) {
                end = j;
                break;
            }
            if rules.is_entry(e) {
                latest = e.ts_us;
            }
        }
        let r = run(&events[s..end], rules);
        let converted = r.reached >= rules.n_steps && !r.excluded;
        i = match (converted, r.last_at()) {
            (true, Some(t)) => events
                .iter()
                .position(|e| e.ts_us > t)
                .unwrap_or(events.len()),
            _ => end,
        };
        out.push(r);
    }
    out
}

fn result(k: usize, chain: &Chain) -> ActorResult {
    if k == 0 {
        return ActorResult::none();
    }
    ActorResult {
        reached: k,
        excluded: chain.excluded,
        step_at: chain.at.clone(),
    }
}

fn ordered(events: &[FunnelEvent], rules: &Rules) -> ActorResult {
    let n = rules.n_steps;
    let strict = rules.order == Order::Strict;
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
                step_event(e, &e.steps, &mut entered, &mut max_step, rules, false);
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
            // event never used twice in a chain, no strict reset, and exclusions ignored
            // (steps.rs: "we ignore exclusions in this case"; a `$identify` sent in the same
            // millisecond as a step must not exclude the chain).
            let mut pairs: Vec<(i32, &FunnelEvent)> = group
                .iter()
                .flat_map(|e| e.steps.iter().filter(|s| **s > 0).map(move |s| (*s, e)))
                .collect();
            pairs.sort_by_key(|(s, e)| (*s, e.seq));
            for (s, e) in pairs {
                step_event(e, &[s], &mut entered, &mut max_step, rules, true);
                if entered[n].start.is_some() {
                    return result(max_step.0, &max_step.1);
                }
            }
        }
        i = j;
    }
    result(max_step.0, &max_step.1)
}

/// Whether an event at `ts` may extend `prev` to step `k`: within the funnel window from the
/// chain's start and, for a step with its own window, from the chain's last step.
fn fits(prev: &Chain, k: usize, ts: i64, rules: &Rules) -> bool {
    let Some(start) = prev.start else {
        return false;
    };
    let from_previous = match (rules.step_window(k), prev.last()) {
        (Some(w), Some(last)) => ts - last <= w,
        _ => true,
    };
    ts - start <= rules.window_us && from_previous
}

fn step_event(
    e: &FunnelEvent,
    steps: &[i32],
    entered: &mut [Chain],
    max_step: &mut (usize, Chain),
    rules: &Rules,
    multiple: bool,
) {
    // Descending: one event cannot advance two steps. (Most events match one step: no copy.)
    let sorted;
    let order: &[i32] = if steps.len() > 1 {
        let mut v = steps.to_vec();
        v.sort_by_key(|s| std::cmp::Reverse(s.unsigned_abs()));
        sorted = v;
        &sorted
    } else {
        steps
    };
    for &s in order {
        let exclusion = s < 0;
        let k = s.unsigned_abs() as usize;
        if k == 0 || k >= entered.len() {
            continue;
        }
        // The chain to extend: the previous step's, or (looking back through optional
        // steps that it cannot extend) an earlier one's.
        let mut p = k - 1;
        while p > 0 && !fits(&entered[p], k, e.ts_us, rules) && rules.is_optional(p) {
            p -= 1;
        }
        let prev = &entered[p];
        let already = entered[k].start.is_some() && entered[k].start == prev.start;
        if !fits(prev, k, e.ts_us, rules) || already {
            continue;
        }
        if exclusion {
            match rules.exclusions {
                ExclusionMode::DropActor => {
                    if !entered[p].excluded {
                        entered[p].excluded = true;
                        if max_step.0 == p
                            && max_step
                                .1
                                .start
                                .is_some_and(|m| e.ts_us - m <= rules.window_us)
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
        let mut next = prev.clone();
        // Optional steps passed over are skipped.
        next.at.resize(k - 1, None);
        next.at.push(Some(e.ts_us));
        next.seqs.push(e.seq);
        let furthest = k > max_step.0 || (k == max_step.0 && max_step.1.excluded);
        // An excluded chain still advances (steps.rs): it is not kept as the chain at
        // step k, but its progress counts for `max_step`, so a later clean chain must get
        // at least as far to replace it.
        if next.excluded {
            if furthest {
                *max_step = (k, next);
            }
        } else {
            if furthest {
                *max_step = (k, next.clone());
            }
            entered[k] = next;
        }
    }
}

/// Any order (unordered_steps.rs): one deque per step; events older than the window fall
/// out; an exclusion clears the attempt in progress but never removes the actor. With
/// `entry_between`, events before it are left out and only chains whose first event is
/// inside it are recorded.
fn unordered(events: &[FunnelEvent], rules: &Rules) -> ActorResult {
    let (n, window_us) = (rules.n_steps, rules.window_us);
    let (lo, hi) = rules.entry_between.unwrap_or((i64::MIN, i64::MAX));
    let mut deques: Vec<VecDeque<i64>> = vec![VecDeque::new(); n];
    let mut best: (usize, Vec<i64>) = (0, Vec::new());
    let record = |deques: &[VecDeque<i64>], best: &mut (usize, Vec<i64>)| {
        let mut fronts: Vec<i64> = deques.iter().filter_map(|d| d.front().copied()).collect();
        if fronts.len() > best.0 {
            fronts.sort_unstable();
            if fronts.first().is_some_and(|t| *t < hi) {
                *best = (fronts.len(), fronts);
            }
        }
    };
    for e in events.iter().filter(|e| e.ts_us >= lo) {
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
        reached: best.0,
        excluded: false,
        step_at: best.1.into_iter().map(Some).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    const T0: i64 = 1_700_000_000 * S;

    fn ev(seq: i64, secs: i64, steps: &[i32]) -> FunnelEvent {
        FunnelEvent {
            ts_us: T0 + secs * S,
            seq,
            steps: steps.into(),
        }
    }

    fn rules(n: usize, window_s: i64, order: Order) -> Rules {
        Rules::new(n, window_s * S, order, ExclusionMode::DropActor)
    }

    fn go(events: &[FunnelEvent], n: usize, window_s: i64, order: Order) -> ActorResult {
        run(events, &rules(n, window_s, order))
    }

    /// (reached, excluded, step times)
    fn summary(r: &ActorResult) -> (usize, bool, Vec<Option<f64>>) {
        (r.reached, r.excluded, r.step_times())
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
        assert!(r.excluded);
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
        assert_eq!(summary(&r), (2, false, vec![Some(100.0)]));
        let r = go(
            &[ev(1, 100, &[1]), ev(2, 200, &[2]), ev(3, 300, &[-2])],
            2,
            14 * 86_400,
            Order::Ordered,
        );
        assert_eq!((r.reached, r.excluded), (2, false));
        // Mixpanel: the exclusion ends the attempt; the user still counts at step 1.
        let r = run(
            &[ev(1, 100, &[1]), ev(2, 200, &[-2]), ev(3, 300, &[2])],
            &Rules::new(
                2,
                14 * 86_400 * S,
                Order::Ordered,
                ExclusionMode::EndAttempt,
            ),
        );
        assert_eq!((r.reached, r.excluded), (1, false));
    }

    #[test]
    fn tv_fun_13_an_excluded_chain_keeps_advancing() {
        // signup_started → signup_completed → project_created, exclusion between steps 1
        // and 2 (-2): started 0 s, excluded 60 s, completed 120 s, started again 180 s.
        let r = go(
            &[
                ev(1, 0, &[1]),
                ev(2, 60, &[-2]),
                ev(3, 120, &[2]),
                ev(4, 180, &[1]),
            ],
            3,
            14 * 86_400,
            Order::Ordered,
        );
        // The excluded chain got to step 2; the clean one only to step 1.
        assert_eq!((r.reached, r.excluded), (2, true));
        // A clean chain that gets as far replaces it.
        let r = go(
            &[
                ev(1, 0, &[1]),
                ev(2, 60, &[-2]),
                ev(3, 120, &[2]),
                ev(4, 180, &[1]),
                ev(5, 240, &[2]),
            ],
            3,
            14 * 86_400,
            Order::Ordered,
        );
        assert_eq!(summary(&r), (2, false, vec![Some(60.0)]));
    }

    #[test]
    fn an_excluded_chain_is_not_kept_as_the_chain_at_its_step() {
        // steps.rs records the excluded chain's progress in max_step only: an earlier clean
        // chain at step 2 (0 s → 10 s) is still the one step 3 extends.
        let r = go(
            &[
                ev(1, 0, &[1]),
                ev(2, 10, &[2]),
                ev(3, 20, &[1]),
                ev(4, 30, &[-2]),
                ev(5, 40, &[2]),
                ev(6, 50, &[3]),
            ],
            3,
            14 * 86_400,
            Order::Ordered,
        );
        assert_eq!(summary(&r), (3, false, vec![Some(10.0), Some(40.0)]));
    }

    #[test]
    fn tv_fun_14_exclusions_are_ignored_at_an_instant_with_other_steps() {
        // signup_started 0 s; `$identify` (exclusion -2) and signup_completed both at 10 s.
        for order in [Order::Ordered, Order::Strict] {
            for seqs in [(2, 3), (3, 2)] {
                let r = go(
                    &[ev(1, 0, &[1]), ev(seqs.0, 10, &[-2]), ev(seqs.1, 10, &[2])],
                    2,
                    14 * 86_400,
                    order,
                );
                assert_eq!(summary(&r), (2, false, vec![Some(10.0)]), "{order:?}");
            }
        }
        // Mixpanel mode: the exclusion at that instant does not end the attempt either.
        let r = run(
            &[ev(1, 0, &[1]), ev(2, 10, &[-2]), ev(3, 10, &[2])],
            &Rules::new(
                2,
                14 * 86_400 * S,
                Order::Ordered,
                ExclusionMode::EndAttempt,
            ),
        );
        assert_eq!((r.reached, r.excluded), (2, false));
        // At an instant of its own, or with copies of itself, the exclusion still counts.
        let r = go(
            &[
                ev(1, 0, &[1]),
                ev(2, 10, &[-2]),
                ev(3, 10, &[-2]),
                ev(4, 20, &[2]),
            ],
            2,
            14 * 86_400,
            Order::Ordered,
        );
        assert!(r.excluded);
    }

    #[test]
    fn tv_fun_5_latest_step_1_is_the_chain_start() {
        let r = go(
            &[ev(1, 0, &[1]), ev(2, 100, &[1]), ev(3, 150, &[2])],
            2,
            60,
            Order::Ordered,
        );
        assert_eq!(summary(&r), (2, false, vec![Some(50.0)]));
        let r = go(
            &[ev(1, 0, &[1]), ev(2, 10, &[1]), ev(3, 20, &[2])],
            2,
            60,
            Order::Ordered,
        );
        assert_eq!(summary(&r), (2, false, vec![Some(10.0)]));
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
        assert_eq!(r.reached, 2);
    }

    #[test]
    fn tv_fun_7_strict_vs_ordered() {
        let events = [ev(1, 0, &[1]), ev(2, 10, &[]), ev(3, 20, &[2])];
        assert_eq!(go(&events, 2, 60, Order::Ordered).reached, 2);
        assert_eq!(go(&events, 2, 60, Order::Strict).reached, 1);
    }

    #[test]
    fn tv_fun_8_ties_resolve_in_step_order() {
        let r = go(&[ev(1, 5, &[2]), ev(2, 5, &[1])], 2, 60, Order::Ordered);
        assert_eq!(summary(&r), (2, false, vec![Some(0.0)]));
    }

    #[test]
    fn tv_fun_9_duplicate_step_needs_two_events() {
        assert_eq!(go(&[ev(1, 0, &[1, 2])], 2, 60, Order::Ordered).reached, 1);
        let r = go(
            &[ev(1, 0, &[1, 2]), ev(2, 5, &[1, 2])],
            2,
            60,
            Order::Ordered,
        );
        assert_eq!(summary(&r), (2, false, vec![Some(5.0)]));
    }

    #[test]
    fn an_entry_period_limits_where_chains_may_start() {
        // Any order: steps at 0 s (step 2), 10 s (step 1), 100 s (step 2); window 60 s.
        let evs = [ev(1, 0, &[2]), ev(2, 10, &[1]), ev(3, 100, &[2])];
        let mut r = rules(2, 60, Order::Unordered);
        assert_eq!(run(&evs, &r).step_at, vec![Some(T0), Some(T0 + 10 * S)]);
        // Entering in [5 s, 20 s): the chain must start at the 10 s event; the 0 s event is
        // left out and the 100 s one is past the window.
        r.entry_between = Some((T0 + 5 * S, T0 + 20 * S));
        let got = run(&evs, &r);
        assert_eq!((got.reached, got.entered_at()), (1, Some(T0 + 10 * S)));
        // Entering in [50 s, 200 s): only the 100 s event is there.
        r.entry_between = Some((T0 + 50 * S, T0 + 200 * S));
        assert_eq!(run(&evs, &r).entered_at(), Some(T0 + 100 * S));
        // Nothing enters in [200 s, 300 s).
        r.entry_between = Some((T0 + 200 * S, T0 + 300 * S));
        assert_eq!(run(&evs, &r).reached, 0);
        // Ordered: only a step-1 event inside the period starts a chain.
        let evs = [ev(1, 0, &[1]), ev(2, 10, &[1]), ev(3, 20, &[2])];
        let mut r = rules(2, 60, Order::Ordered);
        r.entry_between = Some((T0 + 5 * S, T0 + 15 * S));
        let got = run(&evs, &r);
        assert_eq!((got.reached, got.entered_at()), (2, Some(T0 + 10 * S)));
        r.entry_between = Some((T0 + 15 * S, T0 + 30 * S));
        assert_eq!(run(&evs, &r).reached, 0);
    }

    #[test]
    fn unordered_counts_steps_in_any_order_and_exclusions_only_end_the_attempt() {
        let r = go(&[ev(1, 0, &[2]), ev(2, 10, &[1])], 2, 60, Order::Unordered);
        assert_eq!(summary(&r), (2, false, vec![Some(10.0)]));
        // Outside the window the older event falls out.
        assert_eq!(
            go(&[ev(1, 0, &[2]), ev(2, 100, &[1])], 2, 60, Order::Unordered).reached,
            1
        );
        let r = go(
            &[ev(1, 0, &[1]), ev(2, 5, &[-2]), ev(3, 10, &[2])],
            2,
            60,
            Order::Unordered,
        );
        assert_eq!(r.reached, 1);
    }

    fn optional_rules(n: usize, window_s: i64, optional: &[usize]) -> Rules {
        let mut r = rules(n, window_s, Order::Ordered);
        r.optional = (0..=n).map(|k| optional.contains(&k)).collect();
        r
    }

    #[test]
    fn an_optional_step_may_be_skipped_but_later_steps_are_still_required() {
        // A → B (optional) → C, window 60 s.
        let rules = optional_rules(3, 60, &[2]);
        // Skipped: C extends the A chain; B is not done and has no time.
        let r = run(&[ev(1, 0, &[1]), ev(2, 10, &[3])], &rules);
        assert_eq!(summary(&r), (3, false, vec![None, Some(10.0)]));
        assert!(r.did(1) && !r.did(2) && r.did(3));
        // Done: times are from the previous step done.
        let r = run(&[ev(1, 0, &[1]), ev(2, 5, &[2]), ev(3, 10, &[3])], &rules);
        assert_eq!(summary(&r), (3, false, vec![Some(5.0), Some(5.0)]));
        assert!(r.did(2));
        // Done but the required last step never came.
        let r = run(&[ev(1, 0, &[1]), ev(2, 5, &[2])], &rules);
        assert_eq!((r.reached, r.did(2)), (2, true));
        // Without the optional flag C cannot skip B.
        let r = go(&[ev(1, 0, &[1]), ev(2, 10, &[3])], 3, 60, Order::Ordered);
        assert_eq!(r.reached, 1);
        // The funnel window still holds when skipping: C 61 s after A does not count.
        let r = run(&[ev(1, 0, &[1]), ev(2, 61, &[3])], &rules);
        assert_eq!(r.reached, 1);
    }

    #[test]
    fn a_step_window_bounds_the_time_from_the_previous_step_inclusively() {
        // A → B → C, funnel window 100 s, C within 20 s of B.
        let mut rules = rules(3, 100, Order::Ordered);
        rules.step_windows_us = vec![None, None, None, Some(20 * S)];
        let r = run(&[ev(1, 0, &[1]), ev(2, 10, &[2]), ev(3, 30, &[3])], &rules);
        assert_eq!(summary(&r), (3, false, vec![Some(10.0), Some(20.0)]));
        let r = run(&[ev(1, 0, &[1]), ev(2, 10, &[2]), ev(3, 31, &[3])], &rules);
        assert_eq!(r.reached, 2, "31 s after B is outside C's 20 s window");
        // B optional: when the B chain is too old for C, C looks back to the newer A chain.
        rules.optional = vec![false, false, true, false];
        let r = run(
            &[
                ev(1, 0, &[1]),
                ev(2, 10, &[2]),
                ev(3, 50, &[1]),
                ev(4, 60, &[3]),
            ],
            &rules,
        );
        assert_eq!(r.step_at, vec![Some(50 * S + T0), None, Some(60 * S + T0)]);
    }

    #[test]
    fn attempts_reopen_after_a_conversion_or_a_closed_window() {
        let rules = rules(2, 60, Order::Ordered);
        let reached = |evs: &[FunnelEvent]| -> Vec<(usize, Vec<Option<f64>>)> {
            attempts(evs, &rules)
                .iter()
                .map(|r| (r.reached, r.step_times()))
                .collect()
        };
        // A0 B10 | A20 B30 | A40: three attempts, two converted.
        assert_eq!(
            reached(&[
                ev(1, 0, &[1]),
                ev(2, 10, &[2]),
                ev(3, 20, &[1]),
                ev(4, 30, &[2]),
                ev(5, 40, &[1]),
            ]),
            vec![(2, vec![Some(10.0)]), (2, vec![Some(10.0)]), (1, vec![])]
        );
        // A step-1 event inside an open attempt restarts it: one attempt, 10 s.
        assert_eq!(
            reached(&[ev(1, 0, &[1]), ev(2, 10, &[1]), ev(3, 20, &[2])]),
            vec![(2, vec![Some(10.0)])]
        );
        // The first attempt's window closes at 60 s; A100 opens a second one.
        assert_eq!(
            reached(&[ev(1, 0, &[1]), ev(2, 100, &[1]), ev(3, 120, &[2])]),
            vec![(1, vec![]), (2, vec![Some(20.0)])]
        );
    }
}
