//! A history of client operations, given directly or built from a
//! Jepsen-style event log (invoke, then ok, fail or info, per client).

use std::collections::HashMap;

/// One operation: who ran it, when, what it asked and what it was told.
///
/// Times are in any monotonic unit. An operation without a return (`ret` and
/// `output` both `None`) has an unknown outcome: it may take effect at any
/// point after its call, or never. One with a `ret` but no `output`
/// ([`Operation::unknown_until`]) has an unknown outcome too, but if it took
/// effect it did so by `ret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (Jepsen's process) that ran the operation.
    pub client: u64,
    /// When the operation was invoked.
    pub call: u64,
    /// When it returned; `None` if it never did or its outcome is unknown.
    pub ret: Option<u64>,
    /// What was asked.
    pub input: I,
    /// What was answered; `Some` only when `ret` is (`None` with a `ret`: an unknown outcome settled by then).
    pub output: Option<O>,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `ret`.
    pub fn returned(client: u64, call: u64, ret: u64, input: I, output: O) -> Self {
        Self {
            client,
            call,
            ret: Some(ret),
            input,
            output: Some(output),
        }
    }

    /// An operation whose outcome is unknown.
    pub fn pending(client: u64, call: u64, input: I) -> Self {
        Self {
            client,
            call,
            ret: None,
            input,
            output: None,
        }
    }

    /// An operation whose outcome is unknown but which, if it took effect
    /// at all, did so between `call` and `by` (what a client can know of a
    /// last-writer-wins write that a newer version has since superseded).
    pub fn unknown_until(client: u64, call: u64, by: u64, input: I) -> Self {
        Self {
            client,
            call,
            ret: Some(by),
            input,
            output: None,
        }
    }

    /// Whether the operation has a return time: it returned an output, or
    /// its unknown outcome was settled by then ([`Operation::unknown_until`]).
    pub fn is_returned(&self) -> bool {
        self.ret.is_some()
    }
}

/// One entry of an event log: a client's invocation or completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<I, O> {
    /// The client the event belongs to; it has at most one operation in
    /// flight.
    pub client: u64,
    /// When the event happened, non-decreasing along the log.
    pub time: u64,
    /// What happened.
    pub kind: EventKind<I, O>,
}

/// What an [`Event`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind<I, O> {
    /// The client started an operation.
    Invoke(I),
    /// The client's operation completed with this output.
    Ok(O),
    /// The client's operation certainly did not take effect; it is dropped.
    Fail,
    /// The client's operation's outcome is unknown; it stays pending.
    Info,
}

/// Why a set of operations or events is not a history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// An operation returned before it was called.
    #[error("operation {index} returns at {ret}, before its call at {call}")]
    ReturnBeforeCall {
        /// The operation's position.
        index: usize,
        /// Its call time.
        call: u64,
        /// Its return time.
        ret: u64,
    },
    /// An operation has an output but no return time.
    #[error("operation {index} has an output but no return time")]
    HalfReturned {
        /// The operation's position.
        index: usize,
    },
    /// A client invoked an operation while another of its own was in flight.
    #[error("event {event}: client {client} invokes while an operation is in flight")]
    InvokeInFlight {
        /// The event's position in the log.
        event: usize,
        /// The client.
        client: u64,
    },
    /// A completion names a client with no operation in flight.
    #[error("event {event}: client {client} completes with no operation in flight")]
    CompletionWithoutInvoke {
        /// The event's position in the log.
        event: usize,
        /// The client.
        client: u64,
    },
    /// An event is earlier than the one before it.
    #[error("event {event}: time {time} is earlier than the previous event's")]
    TimeWentBackwards {
        /// The event's position in the log.
        event: usize,
        /// Its time.
        time: u64,
    },
}

/// A set of operations to check, each with a valid call and return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    ops: Vec<Operation<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        Self { ops: Vec::new() }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation, rejecting a return before its call or an output
    /// without a return.
    pub fn push(&mut self, op: Operation<I, O>) -> Result<(), HistoryError> {
        let index = self.ops.len();
        if op.ret.is_none() && op.output.is_some() {
            return Err(HistoryError::HalfReturned { index });
        }
        if let Some(ret) = op.ret
            && ret < op.call
        {
            return Err(HistoryError::ReturnBeforeCall {
                index,
                call: op.call,
                ret,
            });
        }
        self.ops.push(op);
        Ok(())
    }

    /// A history of these operations, validated as by [`History::push`].
    pub fn from_ops(ops: impl IntoIterator<Item = Operation<I, O>>) -> Result<Self, HistoryError> {
        let mut history = Self::new();
        for op in ops {
            history.push(op)?;
        }
        Ok(history)
    }

    /// The history an event log records: `Ok` completes the client's
    /// operation, `Fail` drops it (it certainly did not happen), and `Info`
    /// or no completion at all leaves it pending.
    pub fn from_events(
        events: impl IntoIterator<Item = Event<I, O>>,
    ) -> Result<Self, HistoryError> {
        // Slots in invocation order, so operation order follows the log;
        // failed ones become `None` and are dropped at the end.
        let mut slots: Vec<Option<Operation<I, O>>> = Vec::new();
        let mut in_flight: HashMap<u64, usize> = HashMap::new();
        let mut last_time = 0;
        for (event, e) in events.into_iter().enumerate() {
            if e.time < last_time {
                return Err(HistoryError::TimeWentBackwards {
                    event,
                    time: e.time,
                });
            }
            last_time = e.time;
            let client = e.client;
            if let EventKind::Invoke(input) = e.kind {
                if in_flight.contains_key(&client) {
                    return Err(HistoryError::InvokeInFlight { event, client });
                }
                in_flight.insert(client, slots.len());
                slots.push(Some(Operation::pending(client, e.time, input)));
                continue;
            }
            let Some(slot) = in_flight.remove(&client) else {
                return Err(HistoryError::CompletionWithoutInvoke { event, client });
            };
            match e.kind {
                EventKind::Ok(output) => {
                    if let Some(op) = slots[slot].as_mut() {
                        op.ret = Some(e.time);
                        op.output = Some(output);
                    }
                }
                EventKind::Fail => slots[slot] = None,
                EventKind::Info | EventKind::Invoke(_) => {}
            }
        }
        Ok(Self {
            ops: slots.into_iter().flatten().collect(),
        })
    }

    /// The operations, in the order they were added.
    pub fn ops(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
