//! The roster: every peer this node ever learned of, persisted, with the
//! certificate name its node id is bound to and the store it runs.
//!
//! Three rules live here:
//! - **Purge** counts every roster member, not only the members gossip lists
//!   now (see `vergent_replication::purge`): a member that is down, cut off
//!   or forgotten by gossip still holds tombstone purges back.
//! - **Identity**: a node id is bound to the certificate name (CN, else the
//!   first DNS name) it was first seen with, here or by a peer that told us
//!   (purge-check answers carry rosters); a later claim of that id under
//!   another name is refused and logged. With one certificate shared by all
//!   local nodes every id binds to the same name, so the seed's local flow
//!   works unchanged; with per-node certificates no node can speak for
//!   another.
//! - **Retired stores**: a node id seen with a new store id (its data dir was
//!   wiped) retires the old store for good: the old data can never come back
//!   (e.g. from a restored copy), since peers may have purged deletes it
//!   never saw.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};
use vergent_storage::Store;

const ROSTER_META: &str = "roster/";
const RETIRED_META: &str = "retired/";

/// What this node knows of one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The store (data dir incarnation) it runs; 0 until first contact.
    pub(crate) store_id: u64,
    /// Certificate name its id is bound to; empty until first seen.
    pub(crate) cert: String,
    /// Address it was last known at (gossip).
    pub(crate) addr: String,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.cert.len() + self.addr.len());
        out.extend_from_slice(&self.store_id.to_be_bytes());
        out.extend_from_slice(&(self.cert.len() as u16).to_be_bytes());
        out.extend_from_slice(self.cert.as_bytes());
        out.extend_from_slice(self.addr.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let store_id = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let len = u16::from_be_bytes(bytes.get(8..10)?.try_into().ok()?) as usize;
        let cert = String::from_utf8(bytes.get(10..10 + len)?.to_vec()).ok()?;
        let addr = String::from_utf8(bytes.get(10 + len..)?.to_vec()).ok()?;
        Some(Self {
            store_id,
            cert,
            addr,
        })
    }
}

/// Why a peer's claim was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The id is bound to another certificate name.
    #[error(
        "node id {id} belongs to certificate {bound:?}, but was claimed by certificate {presented:?}"
    )]
    Impersonation {
        /// The claimed id.
        id: String,
        /// The name the id is bound to.
        bound: String,
        /// The name the claimant presented.
        presented: String,
    },
    /// The store was replaced by a newer one of the same node (wiped).
    #[error(
        "store {store_id:016x} of node {id} was retired when the node came back with a new data dir; its data may hold deleted keys. Wipe this data dir (the node rebuilds from its peers)"
    )]
    RetiredStore {
        /// The node the store belonged to.
        id: String,
        /// The retired store.
        store_id: u64,
    },
}

/// Every peer ever learned of, persisted in the store's metadata.
#[derive(Debug)]
pub(crate) struct Roster {
    me: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    members: BTreeMap<String, Entry>,
    retired: HashSet<u64>,
}

impl Roster {
    /// Loads the roster persisted in `store`.
    pub(crate) fn load(store: &Store, me: &str) -> Result<Self, vergent_storage::Error> {
        let mut inner = Inner::default();
        for (name, value) in store.scan_meta(ROSTER_META)? {
            let Some(id) = name.strip_prefix(ROSTER_META) else {
                continue;
            };
            match Entry::decode(&value) {
                Some(e) if id != me => {
                    inner.members.insert(id.to_string(), e);
                }
                Some(_) => {}
                None => warn!(peer_id = id, "ignoring an unreadable roster entry"),
            }
        }
        for (name, _) in store.scan_meta(RETIRED_META)? {
            if let Some(id) = name
                .strip_prefix(RETIRED_META)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                inner.retired.insert(id);
            }
        }
        Ok(Self {
            me: me.to_string(),
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ids of every member but this node.
    pub(crate) fn ids(&self) -> BTreeSet<String> {
        self.lock().members.keys().cloned().collect()
    }

    /// A copy of every entry, for status and for gossip to knock on.
    pub(crate) fn entries(&self) -> Vec<(String, Entry)> {
        self.lock()
            .members
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether `store_id` was retired (its node came back wiped).
    #[cfg(test)]
    pub(crate) fn is_retired(&self, store_id: u64) -> bool {
        store_id != 0 && self.lock().retired.contains(&store_id)
    }

    /// Learns of `id` second-hand (gossip, a peer's roster): added when new,
    /// its address refreshed; its certificate binding is taken only when
    /// none is known yet.
    pub(crate) fn learn(&self, store: &Store, id: &str, addr: Option<&str>, cert: Option<&str>) {
        if id == self.me || id.is_empty() {
            return;
        }
        let changed = {
            let mut inner = self.lock();
            let fresh = !inner.members.contains_key(id);
            let e = inner.members.entry(id.to_string()).or_default();
            let mut changed = fresh;
            if let Some(a) = addr.filter(|a| !a.is_empty() && *a != e.addr) {
                e.addr = a.to_string();
                changed = true;
            }
            if let Some(c) = cert.filter(|c| !c.is_empty() && e.cert.is_empty()) {
                e.cert = c.to_string();
                changed = true;
            }
            if fresh {
                info!(peer_id = id, "new member in the roster");
            }
            changed.then(|| e.clone())
        };
        if let Some(e) = changed {
            persist(store, id, &e);
        }
    }

    /// Checks a first-hand claim: a peer presenting certificate `cert` says
    /// it is `id`, running store `store_id` (when the message says). Binds
    /// the id on first sight, retires a replaced store, and refuses a claim
    /// under another certificate or from a retired store.
    pub(crate) fn contact(
        &self,
        store: &Store,
        id: &str,
        store_id: Option<u64>,
        cert: &str,
    ) -> Result<(), Refusal> {
        if id == self.me {
            return Ok(());
        }
        let (entry, retired) = {
            let mut inner = self.lock();
            if let Some(s) = store_id.filter(|s| inner.retired.contains(s)) {
                return Err(Refusal::RetiredStore {
                    id: id.to_string(),
                    store_id: s,
                });
            }
            let e = inner.members.entry(id.to_string()).or_default();
            if !e.cert.is_empty() && !cert.is_empty() && e.cert != cert {
                return Err(Refusal::Impersonation {
                    id: id.to_string(),
                    bound: e.cert.clone(),
                    presented: cert.to_string(),
                });
            }
            let mut changed = false;
            if e.cert.is_empty() && !cert.is_empty() {
                e.cert = cert.to_string();
                changed = true;
            }
            let mut retired = None;
            if let Some(s) = store_id.filter(|s| *s != 0 && *s != e.store_id) {
                if e.store_id != 0 {
                    retired = Some(e.store_id);
                }
                e.store_id = s;
                changed = true;
            }
            let entry = changed.then(|| e.clone());
            if let Some(old) = retired {
                inner.retired.insert(old);
            }
            (entry, retired)
        };
        if let Some(old) = retired {
            warn!(
                peer_id = id,
                old_store = format_args!("{old:016x}"),
                "member came back with a new data dir; its old store is retired for good"
            );
            if let Err(e) = store.put_meta(&format!("{RETIRED_META}{old:016x}"), id.as_bytes()) {
                warn!(error = %e, "cannot persist a retired store");
            }
        }
        if let Some(e) = entry {
            persist(store, id, &e);
        }
        Ok(())
    }
}

/// Synced: a member lost from the roster could let a purge go ahead without it.
fn persist(store: &Store, id: &str, e: &Entry) {
    if let Err(err) = store.put_meta(&format!("{ROSTER_META}{id}"), &e.encode()) {
        warn!(peer_id = id, error = %err, "cannot persist a roster entry");
    }
}

#[cfg(test)]
mod tests {
    use vergent_storage::StoreOptions;

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        (dir, store)
    }

    #[test]
    fn members_learned_by_gossip_or_contact_survive_a_restart() {
        let (_dir, store) = store();
        let r = Roster::load(&store, "me").expect("load");
        r.learn(&store, "b", Some("127.0.0.1:2"), None);
        r.contact(&store, "c", Some(7), "node-c")
            .expect("first contact");
        r.learn(&store, "me", Some("x"), None);
        let again = Roster::load(&store, "me").expect("reload");
        assert_eq!(again.ids(), BTreeSet::from(["b".into(), "c".into()]));
        let c = again.entries().into_iter().find(|(id, _)| id == "c");
        assert_eq!(
            c.map(|(_, e)| (e.store_id, e.cert)),
            Some((7, "node-c".into()))
        );
    }

    #[test]
    fn an_id_claimed_under_another_certificate_is_refused() {
        let (_dir, store) = store();
        let r = Roster::load(&store, "me").expect("load");
        r.contact(&store, "node-a", Some(1), "node-a")
            .expect("bind");
        let err = r
            .contact(&store, "node-a", Some(1), "node-b")
            .expect_err("impostor");
        assert!(matches!(err, Refusal::Impersonation { .. }), "{err}");
        // A binding heard second-hand counts too, and is never overwritten.
        r.learn(&store, "node-x", None, Some("node-x"));
        r.learn(&store, "node-x", None, Some("node-y"));
        assert!(r.contact(&store, "node-x", None, "node-y").is_err());
        assert!(r.contact(&store, "node-x", None, "node-x").is_ok());
        // A shared certificate binds every id to the same name.
        r.contact(&store, "n1", None, "node-1").expect("shared");
        r.contact(&store, "n2", None, "node-1").expect("shared");
    }

    #[test]
    fn a_wiped_member_retires_its_old_store_for_good() {
        let (_dir, store) = store();
        let r = Roster::load(&store, "me").expect("load");
        r.contact(&store, "b", Some(1), "n").expect("first store");
        r.contact(&store, "b", Some(2), "n")
            .expect("wiped: new store");
        assert!(r.is_retired(1));
        let err = r.contact(&store, "b", Some(1), "n").expect_err("old store");
        assert!(matches!(err, Refusal::RetiredStore { .. }), "{err}");
        let again = Roster::load(&store, "me").expect("reload");
        assert!(again.is_retired(1) && !again.is_retired(2));
    }
}
