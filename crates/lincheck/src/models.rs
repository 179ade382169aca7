//! The models Vergent's tests check against: a read/write/CAS register (the
//! Jepsen etcd workload), Porcupine's string KV, and Vergent's own KV.

use std::hash::Hash;
use std::marker::PhantomData;

use crate::model::Model;

/// A register holding a `V` or nothing (never written), with read, write and
/// compare-and-set.
#[derive(Clone, Copy, Debug)]
pub struct Register<V = i64> {
    // `fn() -> V` keeps the model `Send + Sync` whatever `V` is.
    _value: PhantomData<fn() -> V>,
}

impl<V> Register<V> {
    /// A register model over values of type `V`.
    pub fn new() -> Self {
        Self {
            _value: PhantomData,
        }
    }
}

impl<V> Default for Register<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// An operation on a [`Register`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterInput<V> {
    /// Read the current value.
    Read,
    /// Overwrite the value.
    Write(V),
    /// Set the value to `new` if it is `expect`.
    Cas {
        /// The value the register must hold for the write to happen.
        expect: V,
        /// The value written on a match.
        new: V,
    },
}

/// What a [`Register`] operation answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutput<V> {
    /// The value read; `None` if the register was never written.
    Read(Option<V>),
    /// A write completed.
    Written,
    /// A compare-and-set completed: `true` if it matched and wrote, `false`
    /// if the register did not hold the expected value (nothing was written).
    Cas(bool),
}

impl<V: Clone + Eq + Hash> Model for Register<V> {
    type State = Option<V>;
    type Input = RegisterInput<V>;
    type Output = RegisterOutput<V>;

    fn init(&self) -> Option<V> {
        None
    }

    fn step(
        &self,
        state: &Option<V>,
        input: &RegisterInput<V>,
        output: &RegisterOutput<V>,
    ) -> Option<Option<V>> {
        match (input, output) {
            (RegisterInput::Read, RegisterOutput::Read(seen)) => {
                (seen == state).then(|| state.clone())
            }
            (RegisterInput::Write(v), RegisterOutput::Written) => Some(Some(v.clone())),
            (RegisterInput::Cas { expect, new }, RegisterOutput::Cas(applied)) => {
                let matches = state.as_ref() == Some(expect);
                match (matches, applied) {
                    (true, true) => Some(Some(new.clone())),
                    (false, false) => Some(state.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn step_unknown(&self, state: &Option<V>, input: &RegisterInput<V>) -> Vec<Option<V>> {
        match input {
            RegisterInput::Read => Vec::new(),
            RegisterInput::Write(v) => vec![Some(v.clone())],
            RegisterInput::Cas { expect, new } if state.as_ref() == Some(expect) => {
                vec![Some(new.clone())]
            }
            RegisterInput::Cas { .. } => Vec::new(),
        }
    }
}

/// Porcupine's KV model for one key: a string with get, put and append, a
/// missing key reading as the empty string.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvString;

/// An operation on a [`KvString`] key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvInput {
    /// The key, which the model ignores: partition by it with
    /// [`check_by_key`](crate::check_by_key).
    pub key: String,
    /// What was done to the key.
    pub op: KvOp,
}

/// What a [`KvInput`] does to its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Read the string.
    Get,
    /// Replace the string.
    Put(String),
    /// Concatenate onto the string.
    Append(String),
}

/// What a [`KvString`] operation answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOutput {
    /// The string read (empty for a missing key).
    Get(String),
    /// A put or append completed.
    Done,
}

impl Model for KvString {
    type State = String;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, input: &KvInput, output: &KvOutput) -> Option<String> {
        match (&input.op, output) {
            (KvOp::Get, KvOutput::Get(seen)) => (seen == state).then(|| state.clone()),
            (KvOp::Put(v), KvOutput::Done) => Some(v.clone()),
            (KvOp::Append(v), KvOutput::Done) => Some(format!("{state}{v}")),
            _ => None,
        }
    }

    fn step_unknown(&self, state: &String, input: &KvInput) -> Vec<String> {
        match &input.op {
            KvOp::Get => Vec::new(),
            KvOp::Put(v) => vec![v.clone()],
            KvOp::Append(v) => vec![format!("{state}{v}")],
        }
    }
}

/// Vergent's KV for one key: a byte value or absent, where a deleted key and
/// a never-written key are the same state.
#[derive(Clone, Copy, Debug, Default)]
pub struct VergentKv;

/// An operation on one Vergent key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VergentKvInput {
    /// The key, which the model ignores: partition by it with
    /// [`check_by_key`](crate::check_by_key).
    pub key: Vec<u8>,
    /// What was done to the key.
    pub op: VergentOp,
}

/// What a [`VergentKvInput`] does to its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VergentOp {
    /// Read the value.
    Get,
    /// Set the value.
    Put(Vec<u8>),
    /// Remove the value.
    Delete,
    /// Set the value to `new` (`None`: delete) if the key matches `expect`.
    Cas {
        /// What the key must hold for the write to happen.
        expect: Expect,
        /// The value written on a match; `None` deletes.
        new: Option<Vec<u8>>,
    },
}

/// The condition of a [`VergentOp::Cas`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key is absent (never written or deleted).
    Absent,
    /// The key holds exactly this value.
    Value(Vec<u8>),
    /// Anything, absent included: the write always happens.
    Any,
}

impl Expect {
    fn matches(&self, state: &Option<Vec<u8>>) -> bool {
        match self {
            Self::Absent => state.is_none(),
            Self::Value(v) => state.as_ref() == Some(v),
            Self::Any => true,
        }
    }
}

/// What a [`VergentOp`] answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VergentKvOutput {
    /// The value read; `None` if absent.
    Value(Option<Vec<u8>>),
    /// A put or delete completed.
    Done,
    /// A compare-and-set completed; `applied` says whether it matched and
    /// wrote.
    Cas {
        /// Whether the condition held and the write happened.
        applied: bool,
    },
}

impl Model for VergentKv {
    type State = Option<Vec<u8>>;
    type Input = VergentKvInput;
    type Output = VergentKvOutput;

    fn init(&self) -> Option<Vec<u8>> {
        None
    }

    fn step(
        &self,
        state: &Option<Vec<u8>>,
        input: &VergentKvInput,
        output: &VergentKvOutput,
    ) -> Option<Option<Vec<u8>>> {
        match (&input.op, output) {
            (VergentOp::Get, VergentKvOutput::Value(seen)) => {
                (seen == state).then(|| state.clone())
            }
            (VergentOp::Put(v), VergentKvOutput::Done) => Some(Some(v.clone())),
            (VergentOp::Delete, VergentKvOutput::Done) => Some(None),
            (VergentOp::Cas { expect, new }, VergentKvOutput::Cas { applied }) => {
                match (expect.matches(state), applied) {
                    (true, true) => Some(new.clone()),
                    (false, false) => Some(state.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn step_unknown(
        &self,
        state: &Option<Vec<u8>>,
        input: &VergentKvInput,
    ) -> Vec<Option<Vec<u8>>> {
        match &input.op {
            VergentOp::Get => Vec::new(),
            VergentOp::Put(v) => vec![Some(v.clone())],
            VergentOp::Delete => vec![None],
            VergentOp::Cas { expect, new } if expect.matches(state) => vec![new.clone()],
            VergentOp::Cas { .. } => Vec::new(),
        }
    }
}
