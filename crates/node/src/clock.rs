//! The node's clock: an HLC fed by the system clock, with a persisted ceiling.
//!
//! This is the one place in the library crates that reads the system clock.
//! The ceiling written to the store before any timestamp reaches it is what
//! keeps the HLC monotonic across restarts, even when the system clock jumps
//! backwards while the node is down.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use vergent_hlc::{Ceiling, ClockError, Hlc, HlcConfig, Timestamp};
use vergent_storage::{StampError, Store};
use vergent_types::{NodeId, Version};

pub(crate) const CEILING_META: &str = "hlc_ceiling";

/// Wall-clock time in ms since the Unix epoch, unshifted: for records of
/// when something happened (member changes, repair sessions, last alive),
/// never for versions.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How far ahead of issued timestamps the persisted ceiling runs: half the
/// max clock offset (within 10 ms..10 s). After a crash the clock restarts at
/// the ceiling, so a wide window would make a restarted node stamp writes far
/// in the future, where peers refuse them and they beat later writes (the
/// chaos suite found this with a 10 s window). Half the offset costs one
/// small synced meta write per quarter offset of busy time.
fn ceiling_window_ms(max_offset_ms: u64) -> u64 {
    (max_offset_ms / 2).clamp(10, 10_000)
}

struct Inner {
    hlc: Hlc,
    ceiling: Ceiling,
}

/// The node's hybrid logical clock.
pub struct NodeClock {
    inner: Mutex<Inner>,
    node_id: NodeId,
    offset_ms: i64,
}

impl std::fmt::Debug for NodeClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClock")
            .field("node_id", &self.node_id)
            .field("offset_ms", &self.offset_ms)
            .finish_non_exhaustive()
    }
}

impl NodeClock {
    /// Restores the clock above the ceiling persisted in `store`.
    pub fn restore(
        store: &Store,
        node_id: NodeId,
        max_offset_ms: u64,
        offset_ms: i64,
    ) -> Result<Self, vergent_storage::Error> {
        let floor = store
            .get_meta(CEILING_META)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(Timestamp::from_be_bytes)
            .unwrap_or(Timestamp::ZERO);
        let config = HlcConfig { max_offset_ms };
        Ok(Self {
            inner: Mutex::new(Inner {
                hlc: Hlc::with_floor(config, floor),
                ceiling: Ceiling::new(floor, ceiling_window_ms(max_offset_ms)),
            }),
            node_id,
            offset_ms,
        })
    }

    /// How far the restored clock is ahead of physical time: how long to wait
    /// before serving so that a restart does not stamp writes in the future.
    /// At most one ceiling window in normal operation; more only when the
    /// system clock went backwards while the node was down.
    pub fn ahead_of_physical_ms(&self) -> u64 {
        let physical = self.physical_ms();
        self.last().physical_ms().saturating_sub(physical)
    }

    /// Largest offset accepted in a remote timestamp, in ms.
    pub fn max_offset_ms(&self) -> u64 {
        self.lock().hlc.config().max_offset_ms
    }

    /// The window the ceiling runs ahead by.
    pub fn ceiling_window_ms(&self) -> u64 {
        ceiling_window_ms(self.lock().hlc.config().max_offset_ms)
    }

    /// Physical time in ms since the Unix epoch, shifted by the test offset.
    pub fn physical_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        now.saturating_add_signed(self.offset_ms)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current HLC reading, without issuing a timestamp.
    pub fn last(&self) -> Timestamp {
        self.lock().hlc.last()
    }

    /// Stamps a local write above `stored` (the version it overwrites), first
    /// persisting a higher ceiling when the new timestamp gets close to it.
    pub fn stamp(&self, store: &Store, stored: Option<&Version>) -> Result<Version, StampError> {
        let physical = self.physical_ms();
        let mut inner = self.lock();
        if let Some(v) = stored {
            inner.hlc.observe(v.hlc);
        }
        let ts = inner.hlc.now(physical);
        if let Some(new_ceiling) = inner.ceiling.check(ts) {
            store.put_meta(CEILING_META, &new_ceiling.to_be_bytes())?;
        }
        Ok(Version::new(ts, self.node_id.clone()))
    }

    /// Runs `f` on the HLC itself and the current physical time (the
    /// consensus core draws ballots and stamps through it), then persists a
    /// higher ceiling if `f` moved the clock close to it.
    pub fn with_hlc<T>(
        &self,
        store: &Store,
        f: impl FnOnce(&mut Hlc, u64) -> T,
    ) -> Result<T, vergent_storage::Error> {
        let physical = self.physical_ms();
        let mut inner = self.lock();
        let out = f(&mut inner.hlc, physical);
        let last = inner.hlc.last();
        if let Some(new_ceiling) = inner.ceiling.check(last) {
            store.put_meta(CEILING_META, &new_ceiling.to_be_bytes())?;
        }
        Ok(out)
    }

    /// Merges a timestamp received from another node; refuses one too far ahead.
    pub fn update(&self, remote: Timestamp) -> Result<Timestamp, ClockError> {
        let physical = self.physical_ms();
        self.lock().hlc.update(physical, remote)
    }
}
