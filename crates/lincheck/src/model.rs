//! The [`Model`] trait: the sequential specification a history is checked
//! against.

use std::hash::Hash;

/// A sequential specification: the states an object can be in and how each
/// operation moves between them.
pub trait Model {
    /// One state of the object; hashed into the checker's cache.
    type State: Clone + Eq + Hash;
    /// What a client asked for.
    type Input;
    /// What a client was told.
    type Output;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` answered with `output` from `state`, or `None`
    /// if that answer is impossible from `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// The states `input` may lead to from `state` when its answer was never
    /// seen (a timeout, a crash).
    ///
    /// Outcomes that leave the state as it was may be omitted: the checker
    /// can always leave an unanswered operation out, which has the same
    /// effect, and omitting them prunes the search.
    fn step_unknown(&self, state: &Self::State, input: &Self::Input) -> Vec<Self::State>;
}
