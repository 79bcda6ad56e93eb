//! Inclusive ranges and the interval structures built on them.
//!
//! Every range in softiommu is `{start, last}` with `last` inclusive, as the kernel's
//! interval trees have it: the top of the 64-bit space is expressible, and nobody
//! computes `last + 1` without checking it.
//!
//! [`RangeMap`] holds non-overlapping ranges with a value each, ordered by start; it
//! is the shape of the kernel's `area_itree`, `reserved_itree` and `allowed_itree`
//! (which never overlap within one tree). [`CountMap`] counts how many holders cover
//! each point and reports the ranges whose count crosses zero; pinning is built on
//! it. Both cost O(log n) per range touched, never per page.

use std::collections::BTreeMap;
use std::ops::Bound;

/// An inclusive range `[start, last]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct IovaRange {
    /// First address in the range.
    pub start: u64,
    /// Last address in the range (inclusive).
    pub last: u64,
}

impl IovaRange {
    /// The range `[start, last]`; `start <= last` is the caller's to ensure.
    pub const fn new(start: u64, last: u64) -> Self {
        debug_assert!(start <= last);
        IovaRange { start, last }
    }

    /// The range of `length` bytes at `start`; `None` for a zero length or overflow.
    pub fn from_len(start: u64, length: u64) -> Option<Self> {
        let last = start.checked_add(length.checked_sub(1)?)?;
        Some(IovaRange { start, last })
    }

    /// The whole 64-bit space.
    pub const ALL: IovaRange = IovaRange {
        start: 0,
        last: u64::MAX,
    };

    /// Number of bytes, `None` for the whole 64-bit space. (A range is never
    /// empty, so there is no `is_empty`.)
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<u64> {
        (self.last - self.start).checked_add(1)
    }

    /// Whether the two ranges share any point.
    pub fn overlaps(&self, other: &IovaRange) -> bool {
        self.start <= other.last && other.start <= self.last
    }

    /// Whether `other` lies entirely within `self`.
    pub fn contains(&self, other: &IovaRange) -> bool {
        self.start <= other.start && other.last <= self.last
    }

    /// The common part of the two ranges.
    pub fn intersect(&self, other: &IovaRange) -> Option<IovaRange> {
        let start = self.start.max(other.start);
        let last = self.last.min(other.last);
        (start <= last).then_some(IovaRange { start, last })
    }
}

/// Non-overlapping inclusive ranges, each with a value, ordered by start.
///
/// Small maps (most of them: the frames of one mapping, its pin holders) live in a
/// sorted vector sized to fit, and become a B-tree once they grow past
/// [`SMALL_MAX`] entries, so that a map of one range costs one small allocation
/// and a map of a million ranges stays logarithmic.
#[derive(Clone, Debug)]
pub struct RangeMap<V> {
    repr: Repr<V>,
}

/// The most entries a [`RangeMap`] keeps in its vector form.
pub const SMALL_MAX: usize = 8;

#[derive(Clone, Debug)]
enum Repr<V> {
    /// Sorted by start: (start, last, value).
    Small(Vec<(u64, u64, V)>),
    Tree(BTreeMap<u64, (u64, V)>),
}

/// One of two iterators.
enum Either<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
}

impl<V> Default for RangeMap<V> {
    fn default() -> Self {
        RangeMap {
            repr: Repr::Small(Vec::new()),
        }
    }
}

impl<V> RangeMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map, in a `const` context (statics).
    pub const fn new_const() -> Self {
        RangeMap {
            repr: Repr::Small(Vec::new()),
        }
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(v) => v.len(),
            Repr::Tree(t) => t.len(),
        }
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts a range; it must not overlap any range already present.
    pub fn insert(&mut self, range: IovaRange, value: V) {
        debug_assert!(self.first_overlap(range).is_none(), "overlapping insert");
        match &mut self.repr {
            Repr::Small(v) if v.len() < SMALL_MAX => {
                let at = v.partition_point(|e| e.0 < range.start);
                v.reserve_exact(1);
                v.insert(at, (range.start, range.last, value));
            }
            Repr::Small(v) => {
                let mut tree: BTreeMap<u64, (u64, V)> =
                    v.drain(..).map(|(s, l, x)| (s, (l, x))).collect();
                tree.insert(range.start, (range.last, value));
                self.repr = Repr::Tree(tree);
            }
            Repr::Tree(t) => {
                t.insert(range.start, (range.last, value));
            }
        }
    }

    fn small_index(v: &[(u64, u64, V)], start: u64) -> Option<usize> {
        v.binary_search_by_key(&start, |e| e.0).ok()
    }

    /// Removes the range that starts at `start`.
    pub fn remove(&mut self, start: u64) -> Option<(IovaRange, V)> {
        match &mut self.repr {
            Repr::Small(v) => {
                let (s, l, x) = v.remove(Self::small_index(v, start)?);
                if v.is_empty() {
                    *v = Vec::new();
                }
                Some((IovaRange::new(s, l), x))
            }
            Repr::Tree(t) => t
                .remove(&start)
                .map(|(last, x)| (IovaRange { start, last }, x)),
        }
    }

    /// The range starting exactly at `start`.
    pub fn get(&self, start: u64) -> Option<(IovaRange, &V)> {
        match &self.repr {
            Repr::Small(v) => {
                let e = &v[Self::small_index(v, start)?];
                Some((IovaRange::new(e.0, e.1), &e.2))
            }
            Repr::Tree(t) => t
                .get(&start)
                .map(|(last, x)| (IovaRange { start, last: *last }, x)),
        }
    }

    /// Mutable access to the value of the range starting exactly at `start`.
    pub fn get_mut(&mut self, start: u64) -> Option<&mut V> {
        match &mut self.repr {
            Repr::Small(v) => {
                let i = Self::small_index(v, start)?;
                Some(&mut v[i].2)
            }
            Repr::Tree(t) => t.get_mut(&start).map(|(_, x)| x),
        }
    }

    /// The range containing `addr`.
    pub fn find(&self, addr: u64) -> Option<(IovaRange, &V)> {
        let (r, x) = match &self.repr {
            Repr::Small(v) => {
                let i = v.partition_point(|e| e.0 <= addr).checked_sub(1)?;
                let e = &v[i];
                (IovaRange::new(e.0, e.1), &e.2)
            }
            Repr::Tree(t) => {
                let (start, (last, x)) = t.range(..=addr).next_back()?;
                (IovaRange::new(*start, *last), x)
            }
        };
        (r.last >= addr).then_some((r, x))
    }

    /// The lowest range overlapping `range`.
    pub fn first_overlap(&self, range: IovaRange) -> Option<(IovaRange, &V)> {
        self.overlapping(range).next()
    }

    /// The ranges overlapping `range`, in order.
    pub fn overlapping(&self, range: IovaRange) -> impl Iterator<Item = (IovaRange, &V)> + '_ {
        // The range holding range.start, if any, starts at or before it.
        let from = match self.find(range.start) {
            Some((r, _)) => r.start,
            None => range.start,
        };
        match &self.repr {
            Repr::Small(v) => {
                let at = v.partition_point(|e| e.0 < from);
                Either::A(
                    v[at..]
                        .iter()
                        .take_while(move |e| e.0 <= range.last)
                        .map(|e| (IovaRange::new(e.0, e.1), &e.2)),
                )
            }
            Repr::Tree(t) => Either::B(
                t.range((Bound::Included(from), Bound::Included(range.last)))
                    .map(|(s, (l, x))| (IovaRange::new(*s, *l), x)),
            ),
        }
    }

    /// Starts of the ranges overlapping `range` (for removal while iterating).
    pub fn overlapping_starts(&self, range: IovaRange) -> Vec<u64> {
        self.overlapping(range).map(|(r, _)| r.start).collect()
    }

    /// All ranges in order.
    pub fn iter(&self) -> impl Iterator<Item = (IovaRange, &V)> + '_ {
        self.overlapping(IovaRange::ALL)
    }

    /// All ranges in order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (IovaRange, &mut V)> + '_ {
        match &mut self.repr {
            Repr::Small(v) => Either::A(v.iter_mut().map(|e| (IovaRange::new(e.0, e.1), &mut e.2))),
            Repr::Tree(t) => Either::B(t.iter_mut().map(|(s, (l, x))| (IovaRange::new(*s, *l), x))),
        }
    }

    /// Removes every range.
    pub fn clear(&mut self) {
        self.repr = Repr::Small(Vec::new());
    }

    /// The gaps between ranges inside `within`, in order.
    pub fn holes(&self, within: IovaRange) -> Vec<IovaRange> {
        self.holes_iter(within).collect()
    }

    /// The gaps between ranges inside `within`, in order, computed lazily.
    pub fn holes_iter(&self, within: IovaRange) -> impl Iterator<Item = IovaRange> + '_ {
        let mut next = Some(within.start);
        let mut ranges = self.overlapping(within);
        std::iter::from_fn(move || loop {
            let cur = next?;
            match ranges.next() {
                Some((r, _)) => {
                    next = r.last.checked_add(1).filter(|n| *n <= within.last);
                    if r.start > cur {
                        return Some(IovaRange::new(cur, r.start - 1));
                    }
                }
                None => {
                    next = None;
                    return (cur <= within.last).then(|| IovaRange::new(cur, within.last));
                }
            }
        })
    }
}

/// How many holders cover each point of the 64-bit space, as runs.
///
/// `add` and `sub` return the ranges whose count went from 0 to 1 or from 1 to 0:
/// exactly the ranges to pin or unpin.
#[derive(Clone, Debug, Default)]
pub struct CountMap {
    runs: RangeMap<u32>,
}

impl CountMap {
    /// An empty map: every count is zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored runs (for memory accounting and tests).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Whether every count is zero.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The count at `point`.
    pub fn get(&self, point: u64) -> u32 {
        self.runs.find(point).map_or(0, |(_, c)| *c)
    }

    /// Runs of non-zero count overlapping `range`, clipped to it.
    pub fn iter(&self, range: IovaRange) -> impl Iterator<Item = (IovaRange, u32)> + '_ {
        self.runs
            .overlapping(range)
            .filter_map(move |(r, c)| r.intersect(&range).map(|r| (r, *c)))
    }

    /// Splits the run containing `at` so that a run starts at `at`.
    fn split_at(&mut self, at: u64) {
        if let Some((r, &c)) = self.runs.find(at) {
            if r.start != at {
                self.runs.remove(r.start);
                self.runs.insert(IovaRange::new(r.start, at - 1), c);
                self.runs.insert(IovaRange::new(at, r.last), c);
            }
        }
    }

    /// Merges runs around `range` with equal neighbours.
    fn merge_around(&mut self, range: IovaRange) {
        let lo = range.start.saturating_sub(1);
        let hi = range.last.saturating_add(1);
        let starts = self.runs.overlapping_starts(IovaRange::new(lo, hi));
        let mut prev: Option<(IovaRange, u32)> = None;
        for s in starts {
            let Some((r, &c)) = self.runs.get(s) else {
                continue;
            };
            if let Some((p, pc)) = prev {
                if pc == c && p.last.checked_add(1) == Some(r.start) {
                    self.runs.remove(p.start);
                    self.runs.remove(r.start);
                    let merged = IovaRange::new(p.start, r.last);
                    self.runs.insert(merged, c);
                    prev = Some((merged, c));
                    continue;
                }
            }
            prev = Some((r, c));
        }
    }

    /// Adds one holder over `range`; returns the ranges that went from 0 to 1.
    pub fn add(&mut self, range: IovaRange) -> Vec<IovaRange> {
        if self.runs.first_overlap(range).is_none() {
            // Nothing held there yet (the common case): one new run of count 1,
            // joined to neighbours of count 1.
            let mut merged = range;
            if let Some(before) = range.start.checked_sub(1) {
                if let Some((r, &1)) = self.runs.find(before) {
                    self.runs.remove(r.start);
                    merged.start = r.start;
                }
            }
            if let Some(after) = range.last.checked_add(1) {
                if let Some((r, &1)) = self.runs.get(after) {
                    self.runs.remove(r.start);
                    merged.last = r.last;
                }
            }
            self.runs.insert(merged, 1);
            return vec![range];
        }
        self.split_at(range.start);
        if let Some(after) = range.last.checked_add(1) {
            self.split_at(after);
        }
        let holes = self.runs.holes(range);
        for start in self.runs.overlapping_starts(range) {
            if let Some(c) = self.runs.get_mut(start) {
                *c = c
                    .checked_add(1)
                    .expect("more than u32::MAX holders of one page");
            }
        }
        for h in &holes {
            self.runs.insert(*h, 1);
        }
        self.merge_around(range);
        holes
    }

    /// Removes one holder over `range`, which must be held everywhere; returns the
    /// ranges that went from 1 to 0.
    pub fn sub(&mut self, range: IovaRange) -> Vec<IovaRange> {
        if let Some((r, &1)) = self.runs.find(range.start) {
            if r.contains(&range) {
                // Held once, by one run (the common case): cut it out.
                self.runs.remove(r.start);
                if r.start < range.start {
                    self.runs
                        .insert(IovaRange::new(r.start, range.start - 1), 1);
                }
                if r.last > range.last {
                    self.runs.insert(IovaRange::new(range.last + 1, r.last), 1);
                }
                return vec![range];
            }
        }
        self.split_at(range.start);
        if let Some(after) = range.last.checked_add(1) {
            self.split_at(after);
        }
        let mut freed = Vec::new();
        for start in self.runs.overlapping_starts(range) {
            let Some((r, &c)) = self.runs.get(start) else {
                continue;
            };
            if c <= 1 {
                self.runs.remove(start);
                match freed.last_mut() {
                    Some(IovaRange { last, .. }) if last.checked_add(1) == Some(r.start) => {
                        *last = r.last;
                    }
                    _ => freed.push(r),
                }
            } else if let Some(c) = self.runs.get_mut(start) {
                *c -= 1;
            }
        }
        debug_assert!(
            self.runs
                .holes(range)
                .iter()
                .all(|h| freed.iter().any(|f| f.contains(h))),
            "sub over a range that was not held"
        );
        self.merge_around(range);
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn holes_cover_gaps() {
        let mut m = RangeMap::new();
        m.insert(IovaRange::new(10, 19), ());
        m.insert(IovaRange::new(30, 39), ());
        assert_eq!(
            m.holes(IovaRange::new(0, 50)),
            vec![
                IovaRange::new(0, 9),
                IovaRange::new(20, 29),
                IovaRange::new(40, 50)
            ]
        );
        assert_eq!(
            m.holes(IovaRange::new(12, 35)),
            vec![IovaRange::new(20, 29)]
        );
        m.insert(IovaRange::new(40, u64::MAX), ());
        assert_eq!(
            m.holes(IovaRange::ALL),
            vec![IovaRange::new(0, 9), IovaRange::new(20, 29)]
        );
    }

    #[test]
    fn from_len_checks() {
        assert_eq!(IovaRange::from_len(0, 0), None);
        assert_eq!(IovaRange::from_len(u64::MAX, 2), None);
        assert_eq!(
            IovaRange::from_len(u64::MAX, 1),
            Some(IovaRange::new(u64::MAX, u64::MAX))
        );
        assert_eq!(IovaRange::ALL.len(), None);
    }

    proptest! {
        // RangeMap against a plain list, across the vector-to-tree switch.
        #[test]
        fn range_map_matches_model(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..8), 1..80)) {
            let mut m = RangeMap::new();
            let mut model: Vec<(u64, u64, u64)> = Vec::new();
            for (i, (insert, start, len)) in ops.into_iter().enumerate() {
                let r = IovaRange::new(start, start + len);
                if insert {
                    if model.iter().all(|e| e.1 < r.start || e.0 > r.last) {
                        m.insert(r, i as u64);
                        model.push((r.start, r.last, i as u64));
                    }
                } else if let Some(p) = model.iter().position(|e| e.0 <= start && start <= e.1) {
                    let e = model.swap_remove(p);
                    prop_assert_eq!(m.remove(e.0), Some((IovaRange::new(e.0, e.1), e.2)));
                }
                model.sort_unstable();
                let got: Vec<(u64, u64, u64)> = m.iter().map(|(r, v)| (r.start, r.last, *v)).collect();
                prop_assert_eq!(&got, &model);
                let q = IovaRange::new(start.saturating_sub(5), start + 5);
                let over: Vec<u64> = m.overlapping(q).map(|(r, _)| r.start).collect();
                let want: Vec<u64> = model.iter().filter(|e| e.1 >= q.start && e.0 <= q.last).map(|e| e.0).collect();
                prop_assert_eq!(over, want);
                let found = m.find(start).map(|(r, v)| (r.start, r.last, *v));
                prop_assert_eq!(found, model.iter().find(|e| e.0 <= start && start <= e.1).copied());
            }
        }

        // CountMap against a per-point array.
        #[test]
        fn count_map_matches_model(ops in proptest::collection::vec((any::<bool>(), 0u64..64, 0u64..16), 1..60)) {
            let mut m = CountMap::new();
            let mut model = [0u32; 80];
            let mut held: Vec<IovaRange> = Vec::new();
            for (add, start, len) in ops {
                if add || held.is_empty() {
                    let r = IovaRange::new(start, start + len);
                    let went_up = m.add(r);
                    let mut expect = Vec::new();
                    for p in r.start..=r.last {
                        if model[p as usize] == 0 { expect.push(p); }
                        model[p as usize] += 1;
                    }
                    let got: Vec<u64> = went_up.iter().flat_map(|r| r.start..=r.last).collect();
                    prop_assert_eq!(got, expect);
                    held.push(r);
                } else {
                    let r = held.swap_remove((start as usize) % held.len());
                    let went_down = m.sub(r);
                    let mut expect = Vec::new();
                    for p in r.start..=r.last {
                        model[p as usize] -= 1;
                        if model[p as usize] == 0 { expect.push(p); }
                    }
                    let got: Vec<u64> = went_down.iter().flat_map(|r| r.start..=r.last).collect();
                    prop_assert_eq!(got, expect);
                }
                for p in 0..80u64 {
                    prop_assert_eq!(m.get(p), model[p as usize]);
                }
                // Runs are maximal: neighbours with equal counts are merged.
                let runs: Vec<_> = m.iter(IovaRange::ALL).collect();
                for w in runs.windows(2) {
                    prop_assert!(!(w[0].0.last + 1 == w[1].0.start && w[0].1 == w[1].1));
                }
            }
        }
    }
}
