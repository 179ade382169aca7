//! The checker: Wing & Gong's backtracking search for a linearization, with
//! Lowe's cache of (linearized set, model state) pairs so that no
//! configuration is explored twice, run on each key's sub-history alone.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Debug};
use std::hash::Hash;

use crate::history::{History, Operation};
use crate::model::Model;

#[cfg(test)]
mod tests;

/// Limits on a check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// The most search steps over all keys; `None` for no limit. Running out
    /// gives [`Verdict::Unknown`], never a pass.
    pub max_steps: Option<u64>,
}

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every returned operation, and any subset of the pending ones, can be
    /// put in an order that respects real time and the model.
    Linearizable,
    /// No such order exists.
    NotLinearizable(Counterexample),
    /// The step budget ran out before the search decided.
    Unknown,
}

impl Verdict {
    /// Whether the history was shown linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable)
    }
}

/// One operation as a counterexample shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpSummary {
    /// Its position in the checked [`History`].
    pub index: usize,
    /// The client that ran it.
    pub client: u64,
    /// Its call time.
    pub call: u64,
    /// Its return time; `None` if its outcome is unknown.
    pub ret: Option<u64>,
    /// Its input and output, `Debug`-formatted.
    pub description: String,
}

impl fmt::Display for OpSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} client {} [{}, ", self.index, self.client, self.call)?;
        match self.ret {
            Some(ret) => write!(f, "{ret}]")?,
            None => write!(f, "pending]")?,
        }
        write!(f, " {}", self.description)
    }
}

/// Why a history is not linearizable: the deepest point the search reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// The key whose sub-history failed (`Debug`-formatted), or `None` when
    /// the history was checked whole.
    pub key: Option<String>,
    /// How many operations that key's sub-history has.
    pub ops: usize,
    /// The longest linearizable prefix found, in linearization order.
    pub linearized: Vec<OpSummary>,
    /// The model state after that prefix, `Debug`-formatted.
    pub state: String,
    /// The operations that could have come next in real time, none of which
    /// the model allows there or which lead anywhere but dead ends.
    pub stuck: Vec<OpSummary>,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => writeln!(f, "key {key} is not linearizable")?,
            None => writeln!(f, "the history is not linearizable")?,
        }
        writeln!(
            f,
            "longest linearizable prefix ({} of {} operations), reaching state {}:",
            self.linearized.len(),
            self.ops,
            self.state
        )?;
        for op in &self.linearized {
            writeln!(f, "  {op}")?;
        }
        write!(f, "no operation can be placed next:")?;
        for op in &self.stuck {
            write!(f, "\n  {op}")?;
        }
        Ok(())
    }
}

/// Checks `history` as one object.
///
/// Operation `a` precedes `b` in real time only if `a` returned strictly
/// before `b` was called; operations that merely touch are concurrent.
pub fn check<M>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: &CheckOptions,
) -> Verdict
where
    M: Model,
    M::State: Debug,
    M::Input: Debug,
    M::Output: Debug,
{
    let all: Vec<usize> = (0..history.len()).collect();
    check_parts(model, history.ops(), vec![(None, all)], options)
}

/// Checks each key's sub-history on its own, `key` naming the key an input
/// touches; the history is linearizable iff every key's is.
pub fn check_by_key<M, K, F>(
    model: &M,
    history: &History<M::Input, M::Output>,
    key: F,
    options: &CheckOptions,
) -> Verdict
where
    M: Model,
    M::State: Debug,
    M::Input: Debug,
    M::Output: Debug,
    K: Eq + Hash + Debug,
    F: Fn(&M::Input) -> K,
{
    // First-appearance order, so the verdict and the budget's use do not
    // depend on hashing.
    let mut slot: HashMap<K, usize> = HashMap::new();
    let mut parts: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for (i, op) in history.ops().iter().enumerate() {
        let k = key(&op.input);
        let next = parts.len();
        let at = *slot.entry(k).or_insert_with_key(|k| {
            parts.push((Some(format!("{k:?}")), Vec::new()));
            next
        });
        parts[at].1.push(i);
    }
    check_parts(model, history.ops(), parts, options)
}

/// Steps each key's search gets per turn.
///
/// The keys take turns rather than running one after another because one
/// key may need an exhaustive search to fail while another fails at once:
/// any failing key decides the verdict, so the quickest should.
const SLICE: u64 = 4096;

fn check_parts<M>(
    model: &M,
    all: &[Operation<M::Input, M::Output>],
    parts: Vec<(Option<String>, Vec<usize>)>,
    options: &CheckOptions,
) -> Verdict
where
    M: Model,
    M::State: Debug,
    M::Input: Debug,
    M::Output: Debug,
{
    let mut active: Vec<(Option<String>, Search<'_, M>)> = parts
        .into_iter()
        .map(|(key, indices)| (key, Search::new(model, all, indices)))
        .collect();
    let mut budget = options.max_steps;
    while !active.is_empty() {
        let mut still = Vec::with_capacity(active.len());
        for (key, mut search) in active {
            let slice = budget.map_or(SLICE, |left| left.min(SLICE));
            let (outcome, used) = search.run(slice);
            if let Some(left) = budget.as_mut() {
                *left -= used;
            }
            match outcome {
                Some(Outcome::Linearizable) => {}
                Some(Outcome::Stuck(mut cx)) => {
                    cx.key = key;
                    return Verdict::NotLinearizable(cx);
                }
                None if budget == Some(0) => return Verdict::Unknown,
                None => still.push((key, search)),
            }
        }
        active = still;
    }
    Verdict::Linearizable
}

enum Outcome {
    Linearizable,
    Stuck(Counterexample),
}

const NIL: usize = usize::MAX;

/// An entry of the doubly linked list of calls and returns, in time order.
struct Node {
    /// The operation, as an index into the sub-history.
    op: usize,
    /// For a call, its return's node (`NIL` if pending); `NIL` for a return.
    ret: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// A placed operation, kept to undo it.
struct Frame<S> {
    node: usize,
    prev_state: S,
    /// Which of the operation's successor states was taken, so backtracking
    /// tries the next one (several only for an unknown outcome).
    alt: usize,
}

/// A set of sub-history indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

struct Search<'a, M: Model> {
    model: &'a M,
    ops: Vec<&'a Operation<M::Input, M::Output>>,
    indices: Vec<usize>,
    nodes: Vec<Node>,
    /// The next list entry to consider.
    entry: usize,
    bits: Bits,
    state: M::State,
    frames: Vec<Frame<M::State>>,
    cache: HashSet<(Bits, M::State)>,
    returned_left: usize,
    best: Option<Counterexample>,
}

/// The list's nodes: a head at 0, then every call and return ordered by time,
/// a call before a return at the same time so that operations which only
/// touch are concurrent.
fn build_list<I, O>(ops: &[&Operation<I, O>]) -> Vec<Node> {
    let mut points: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        points.push((op.call, false, i));
        if let Some(ret) = op.ret {
            points.push((ret, true, i));
        }
    }
    points.sort_unstable();
    let mut nodes = Vec::with_capacity(points.len() + 1);
    nodes.push(Node {
        op: NIL,
        ret: NIL,
        is_call: false,
        prev: NIL,
        next: NIL,
    });
    let mut call_node = vec![NIL; ops.len()];
    for (at, &(_, is_ret, op)) in points.iter().enumerate() {
        let n = at + 1;
        nodes[n - 1].next = n;
        nodes.push(Node {
            op,
            ret: NIL,
            is_call: !is_ret,
            prev: n - 1,
            next: NIL,
        });
        if is_ret {
            nodes[call_node[op]].ret = n;
        } else {
            call_node[op] = n;
        }
    }
    nodes
}

impl<'a, M> Search<'a, M>
where
    M: Model,
    M::State: Debug,
    M::Input: Debug,
    M::Output: Debug,
{
    fn new(model: &'a M, all: &'a [Operation<M::Input, M::Output>], indices: Vec<usize>) -> Self {
        let ops: Vec<_> = indices.iter().map(|&i| &all[i]).collect();
        let nodes = build_list(&ops);
        Self {
            model,
            entry: nodes[0].next,
            nodes,
            bits: Bits::new(ops.len()),
            state: model.init(),
            frames: Vec::new(),
            cache: HashSet::new(),
            returned_left: ops.iter().filter(|op| op.is_returned()).count(),
            best: None,
            ops,
            indices,
        }
    }

    /// Searches for at most `steps` steps: the outcome if decided (`None`
    /// if not yet), and the steps used.
    fn run(&mut self, steps: u64) -> (Option<Outcome>, u64) {
        let mut used = 0;
        loop {
            // Pending operations never force a backtrack, so once every
            // returned one is placed the rest may simply be left out.
            if self.returned_left == 0 {
                return (Some(Outcome::Linearizable), used);
            }
            if used == steps {
                return (None, used);
            }
            used += 1;
            let entry = self.entry;
            if entry != NIL && self.nodes[entry].is_call {
                self.entry = if self.place(entry, 0) {
                    self.nodes[0].next
                } else {
                    self.nodes[entry].next
                };
                continue;
            }
            // A return whose operation is not placed: nothing can be
            // linearized before it any more, so undo the last placement.
            // (`NIL` cannot be reached with returned operations left, as each
            // one's return follows its call; it is handled the same way.)
            self.note_dead_end(entry);
            let Some(frame) = self.frames.pop() else {
                // `note_dead_end` has just recorded one; were it missing, the
                // search still must not pass.
                let cx = self.best.take().unwrap_or_else(|| Counterexample {
                    key: None,
                    ops: self.ops.len(),
                    linearized: Vec::new(),
                    state: format!("{:?}", self.state),
                    stuck: Vec::new(),
                });
                return (Some(Outcome::Stuck(cx)), used);
            };
            let op = self.nodes[frame.node].op;
            self.unlift(frame.node);
            self.bits.clear(op);
            if self.ops[op].is_returned() {
                self.returned_left += 1;
            }
            self.state = frame.prev_state;
            self.entry = if self.place(frame.node, frame.alt + 1) {
                self.nodes[0].next
            } else {
                self.nodes[frame.node].next
            };
        }
    }

    /// Linearizes the call at `node` next, taking its successor states from
    /// the `from`th on, unless each is impossible or already explored.
    fn place(&mut self, node: usize, from: usize) -> bool {
        let op = self.nodes[node].op;
        let o = self.ops[op];
        let successors = match &o.output {
            Some(output) => self
                .model
                .step(&self.state, &o.input, output)
                .into_iter()
                .collect(),
            None => {
                let mut next = self.model.step_unknown(&self.state, &o.input);
                if o.is_returned() {
                    // Bounded but unknown: it must be placed before its
                    // deadline, so "it never took effect" is an alternative
                    // here (a pending one is simply left out instead).
                    next.push(self.state.clone());
                }
                next
            }
        };
        self.bits.set(op);
        for (alt, next) in successors.into_iter().enumerate().skip(from) {
            if self.cache.insert((self.bits.clone(), next.clone())) {
                let prev_state = std::mem::replace(&mut self.state, next);
                self.frames.push(Frame {
                    node,
                    prev_state,
                    alt,
                });
                self.lift(node);
                if o.is_returned() {
                    self.returned_left -= 1;
                }
                return true;
            }
        }
        self.bits.clear(op);
        false
    }

    /// Unlinks a call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Relinks what [`Self::lift`] unlinked; lifts are undone in reverse
    /// order, so each node's own links still name its old neighbours.
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }

    fn unlink(&mut self, n: usize) {
        let (prev, next) = (self.nodes[n].prev, self.nodes[n].next);
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let (prev, next) = (self.nodes[n].prev, self.nodes[n].next);
        self.nodes[prev].next = n;
        if next != NIL {
            self.nodes[next].prev = n;
        }
    }

    /// Keeps the deepest dead end as the counterexample: its prefix, and the
    /// calls before the blocking return (the only candidates to go next).
    fn note_dead_end(&mut self, barrier: usize) {
        if self
            .best
            .as_ref()
            .is_some_and(|b| b.linearized.len() >= self.frames.len())
        {
            return;
        }
        let linearized = self
            .frames
            .iter()
            .map(|f| self.summary(self.nodes[f.node].op))
            .collect();
        let mut stuck = Vec::new();
        let mut n = self.nodes[0].next;
        while n != barrier && n != NIL {
            if self.nodes[n].is_call {
                stuck.push(self.summary(self.nodes[n].op));
            }
            n = self.nodes[n].next;
        }
        self.best = Some(Counterexample {
            key: None,
            ops: self.ops.len(),
            linearized,
            state: format!("{:?}", self.state),
            stuck,
        });
    }

    fn summary(&self, op: usize) -> OpSummary {
        let o = self.ops[op];
        let description = match (&o.output, o.ret) {
            (Some(output), _) => format!("{:?} -> {:?}", o.input, output),
            (None, Some(_)) => format!("{:?} -> unknown, settled by its deadline", o.input),
            (None, None) => format!("{:?} -> unknown", o.input),
        };
        OpSummary {
            index: self.indices[op],
            client: o.client,
            call: o.call,
            ret: o.ret,
            description,
        }
    }
}
