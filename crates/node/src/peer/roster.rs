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
//! - **Expiry**: a member not seen for `--member-expiry` (default 72 h) of
//!   this node's own running time (a node that was down itself does not
//!   count its downtime against the others) is dropped from the roster, so a node that is gone for good (or came back
//!   wiped under a new id) stops holding purges back, and it is **fenced**:
//!   this node refuses it from then on, unless it comes back with a new
//!   store (wiped). So its old data, which may hold keys deleted meanwhile,
//!   can never return through this node.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};
use vergent_storage::Store;

const ROSTER_META: &str = "roster/";
const RETIRED_META: &str = "retired/";
const FENCED_META: &str = "fenced/";
/// Nodes of the cluster a restored store was backed up from (`vergentd
/// restore`): never contacted, never admitted.
pub(crate) const FOREIGN_META: &str = "foreign/";
/// A member's unseen time is persisted when it grew by this much.
const UNSEEN_PERSIST_MS: u64 = 60_000;
/// Most unseen time one expiry pass adds: a pass after this node was itself
/// paused or suspended for long does not charge that time to the others.
const MAX_UNSEEN_STEP_MS: u64 = 120_000;

/// What this node knows of one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The store (data dir incarnation) it runs; 0 until first contact.
    pub(crate) store_id: u64,
    /// Certificate name its id is bound to; empty until first seen.
    pub(crate) cert: String,
    /// Address it was last known at (gossip).
    pub(crate) addr: String,
    /// Running time of this node since the member was last seen alive
    /// (first-hand or by gossip), ms.
    pub(crate) unseen_ms: u64,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.cert.len() + self.addr.len());
        out.extend_from_slice(&self.store_id.to_be_bytes());
        out.extend_from_slice(&self.unseen_ms.to_be_bytes());
        out.extend_from_slice(&(self.cert.len() as u16).to_be_bytes());
        out.extend_from_slice(self.cert.as_bytes());
        out.extend_from_slice(self.addr.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let (store_id, unseen_ms) = (word(0)?, word(8)?);
        let len = u16::from_be_bytes(bytes.get(16..18)?.try_into().ok()?) as usize;
        let cert = String::from_utf8(bytes.get(18..18 + len)?.to_vec()).ok()?;
        let addr = String::from_utf8(bytes.get(18 + len..)?.to_vec()).ok()?;
        Some(Self {
            store_id,
            cert,
            addr,
            unseen_ms,
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
    /// The member was expired (not seen for the member expiry) and is
    /// refused until it comes back wiped.
    #[error(
        "node {id} was dropped from the cluster after it was not seen for longer than --member-expiry; peers may have purged deletes it never saw, so its data is refused. Wipe its data dir and start it again (it rebuilds from its peers)"
    )]
    Expired {
        /// The expired node.
        id: String,
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
    /// The node belongs to the cluster this node's data was restored from.
    #[error(
        "node {id} belongs to the cluster this node's data was restored from (vergentd restore); a restored node starts a new cluster and never exchanges data with the old one. Point --peers at nodes of the new cluster"
    )]
    OtherCluster {
        /// The node of the old cluster.
        id: String,
    },
}

impl Refusal {
    /// Whether the refused node's data is refused for good (it must be
    /// wiped), as opposed to a claim under the wrong certificate.
    pub(crate) fn fences(&self) -> bool {
        matches!(self, Self::Expired { .. } | Self::RetiredStore { .. })
    }
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
    /// Expired members and the store they last ran (0: never known).
    fenced: BTreeMap<String, u64>,
    /// The `unseen_ms` persisted for each member.
    persisted_unseen: BTreeMap<String, u64>,
    /// Nodes of the cluster this store was restored from.
    foreign: BTreeSet<String>,
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
        for (name, value) in store.scan_meta(FENCED_META)? {
            if let Some(id) = name.strip_prefix(FENCED_META) {
                let last = <[u8; 8]>::try_from(value.as_slice()).map_or(0, u64::from_be_bytes);
                inner.fenced.insert(id.to_string(), last);
            }
        }
        for (name, _) in store.scan_meta(FOREIGN_META)? {
            if let Some(id) = name.strip_prefix(FOREIGN_META) {
                inner.members.remove(id);
                inner.foreign.insert(id.to_string());
            }
        }
        inner.persisted_unseen = inner
            .members
            .iter()
            .map(|(k, e)| (k.clone(), e.unseen_ms))
            .collect();
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

    /// Learns of `id` second-hand (gossip, a peer's roster): added when new
    /// (unless it was expired: then it is ignored), its address refreshed;
    /// its certificate binding is taken only when none is known yet.
    /// `alive` says it is reported alive now.
    pub(crate) fn learn(
        &self,
        store: &Store,
        id: &str,
        addr: Option<&str>,
        cert: Option<&str>,
        alive: bool,
    ) {
        if id == self.me || id.is_empty() {
            return;
        }
        let changed = {
            let mut inner = self.lock();
            if inner.fenced.contains_key(id) || inner.foreign.contains(id) {
                return;
            }
            let fresh = !inner.members.contains_key(id);
            let e = inner.members.entry(id.to_string()).or_default();
            let mut changed = fresh;
            if alive {
                e.unseen_ms = 0;
            }
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
            let e = e.clone();
            changed |= inner.unseen_due(id, e.unseen_ms);
            if changed {
                inner.persisted_unseen.insert(id.to_string(), e.unseen_ms);
            }
            changed.then_some(e)
        };
        if let Some(e) = changed {
            persist(store, id, &e);
        }
    }

    /// Charges `elapsed_ms` of this node's running time to every member not
    /// in `alive`, then drops every member unseen for `expiry_ms` and fences
    /// it (see the module docs); returns the ids expired.
    pub(crate) fn expire(
        &self,
        store: &Store,
        alive: &BTreeSet<String>,
        elapsed_ms: u64,
        expiry_ms: u64,
    ) -> Vec<String> {
        let (gone, grown) = {
            let mut inner = self.lock();
            let mut grown = Vec::new();
            let expired = vergent_replication::purge::charge_unseen(
                inner
                    .members
                    .iter_mut()
                    .map(|(id, e)| (id, &mut e.unseen_ms)),
                alive,
                elapsed_ms,
                MAX_UNSEEN_STEP_MS,
                expiry_ms,
            );
            let gone: Vec<(String, u64)> = expired
                .into_iter()
                .filter_map(|id| {
                    let store_id = inner.members.get(&id)?.store_id;
                    Some((id, store_id))
                })
                .collect();
            for (id, store_id) in &gone {
                inner.members.remove(id);
                inner.persisted_unseen.remove(id);
                inner.fenced.insert(id.clone(), *store_id);
            }
            let due: Vec<(String, Entry)> = inner
                .members
                .iter()
                .filter(|(id, e)| inner.unseen_due(id, e.unseen_ms))
                .map(|(id, e)| (id.clone(), e.clone()))
                .collect();
            for (id, e) in due {
                inner.persisted_unseen.insert(id.clone(), e.unseen_ms);
                grown.push((id, e));
            }
            (gone, grown)
        };
        for (id, e) in &grown {
            persist(store, id, e);
        }
        for (id, store_id) in &gone {
            warn!(
                peer_id = %id,
                "member not seen for longer than --member-expiry: purges no longer wait for it, and it is refused unless it comes back wiped"
            );
            if let Err(e) = store
                .put_meta(&format!("{FENCED_META}{id}"), &store_id.to_be_bytes())
                .and_then(|()| store.delete_meta(&format!("{ROSTER_META}{id}")))
            {
                warn!(peer_id = %id, error = %e, "cannot persist an expired member");
            }
        }
        gone.into_iter().map(|(id, _)| id).collect()
    }

    /// Members expired and fenced, for `status`.
    pub(crate) fn fenced(&self) -> Vec<String> {
        self.lock().fenced.keys().cloned().collect()
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
        let (entry, retired, unfenced) = {
            let mut inner = self.lock();
            if inner.foreign.contains(id) {
                return Err(Refusal::OtherCluster { id: id.to_string() });
            }
            if let Some(s) = store_id.filter(|s| inner.retired.contains(s)) {
                return Err(Refusal::RetiredStore {
                    id: id.to_string(),
                    store_id: s,
                });
            }
            // An expired member comes back only with a new store (wiped):
            // its old one may hold keys deleted since.
            let mut unfenced = false;
            if let Some(&last) = inner.fenced.get(id) {
                match store_id {
                    Some(s) if last != 0 && s != 0 && s != last => {
                        inner.fenced.remove(id);
                        inner.retired.insert(last);
                        unfenced = true;
                    }
                    _ => return Err(Refusal::Expired { id: id.to_string() }),
                }
            }
            let fresh = !inner.members.contains_key(id);
            let e = inner.members.entry(id.to_string()).or_default();
            e.unseen_ms = 0;
            if !e.cert.is_empty() && !cert.is_empty() && e.cert != cert {
                return Err(Refusal::Impersonation {
                    id: id.to_string(),
                    bound: e.cert.clone(),
                    presented: cert.to_string(),
                });
            }
            let mut changed = fresh;
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
            let e = e.clone();
            changed |= inner.unseen_due(id, e.unseen_ms);
            if changed {
                inner.persisted_unseen.insert(id.to_string(), e.unseen_ms);
            }
            if let Some(old) = retired {
                inner.retired.insert(old);
            }
            (changed.then_some(e), retired, unfenced)
        };
        if unfenced {
            info!(
                peer_id = id,
                "an expired member came back wiped; it is a member again"
            );
            if let Err(e) = store.delete_meta(&format!("{FENCED_META}{id}")) {
                warn!(error = %e, "cannot persist an unfenced member");
            }
        }
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

impl Inner {
    /// Whether a member's unseen time moved far enough from the persisted
    /// one to be written again (grown by a step, or reset to zero).
    fn unseen_due(&self, id: &str, unseen_ms: u64) -> bool {
        self.persisted_unseen.get(id).is_none_or(|p| {
            unseen_ms >= p.saturating_add(UNSEEN_PERSIST_MS) || (unseen_ms == 0 && *p > 0)
        })
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
        r.learn(&store, "b", Some("127.0.0.1:2"), None, true);
        r.contact(&store, "c", Some(7), "node-c")
            .expect("first contact");
        r.learn(&store, "me", Some("x"), None, true);
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
        r.learn(&store, "node-x", None, Some("node-x"), false);
        r.learn(&store, "node-x", None, Some("node-y"), false);
        assert!(r.contact(&store, "node-x", None, "node-y").is_err());
        assert!(r.contact(&store, "node-x", None, "node-x").is_ok());
        // A shared certificate binds every id to the same name.
        r.contact(&store, "n1", None, "node-1").expect("shared");
        r.contact(&store, "n2", None, "node-1").expect("shared");
    }

    #[test]
    fn nodes_of_the_cluster_a_store_was_restored_from_are_refused_and_never_learned() {
        let (_dir, store) = store();
        store
            .put_meta(&format!("{FOREIGN_META}old-1"), b"")
            .expect("meta");
        let r = Roster::load(&store, "me").expect("load");
        let err = r
            .contact(&store, "old-1", Some(3), "n")
            .expect_err("old cluster");
        assert!(matches!(err, Refusal::OtherCluster { .. }), "{err}");
        // Refused, but not told to fence itself: it is a healthy node of
        // another cluster.
        assert!(!err.fences());
        r.learn(&store, "old-1", Some("127.0.0.1:9"), None, true);
        assert!(r.ids().is_empty(), "{:?}", r.ids());
        r.contact(&store, "new-1", Some(4), "n")
            .expect("a new node");
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

    #[test]
    fn a_member_not_seen_for_the_expiry_stops_counting_and_is_refused_unless_it_returns_wiped() {
        let (_dir, store) = store();
        let r = Roster::load(&store, "me").expect("load");
        r.contact(&store, "gone", Some(5), "n")
            .expect("first contact");
        r.learn(&store, "never-contacted", None, None, false);
        r.learn(&store, "here", None, None, true);
        let alive = BTreeSet::from(["here".to_string()]);
        assert!(
            r.expire(&store, &alive, 50_000, 60_000).is_empty(),
            "50 s unseen"
        );
        let mut gone = r.expire(&store, &alive, 20_000, 60_000);
        gone.sort();
        assert_eq!(
            gone,
            vec!["gone".to_string(), "never-contacted".to_string()]
        );
        assert_eq!(r.ids(), BTreeSet::from(["here".to_string()]));
        // Gossip or a peer's roster does not bring it back...
        r.learn(&store, "gone", Some("a"), None, true);
        assert!(!r.ids().contains("gone"));
        // ...nor does the old store, nor an unknown one: only a wiped one.
        let again = Roster::load(&store, "me").expect("reload");
        for r in [&r, &again] {
            assert!(matches!(
                r.contact(&store, "gone", Some(5), "n"),
                Err(Refusal::Expired { .. })
            ));
            assert!(r.contact(&store, "never-contacted", Some(9), "n").is_err());
        }
        again
            .contact(&store, "gone", Some(6), "n")
            .expect("back wiped");
        assert!(again.ids().contains("gone") && again.is_retired(5));
    }

    #[test]
    fn only_this_nodes_running_time_counts_against_a_member() {
        let (_dir, store) = store();
        let r = Roster::load(&store, "me").expect("load");
        r.learn(&store, "b", None, None, true);
        let none = BTreeSet::new();
        // However long one pass says has gone by (this node was down, paused
        // or suspended), it charges at most two minutes.
        assert!(r.expire(&store, &none, 10 * 3_600_000, 300_000).is_empty());
        assert!(r.expire(&store, &none, 10 * 3_600_000, 300_000).is_empty());
        // Seen again: the count starts over.
        r.learn(&store, "b", None, None, true);
        assert!(r.expire(&store, &none, 100_000, 250_000).is_empty());
        assert!(r.expire(&store, &none, 100_000, 250_000).is_empty());
        assert_eq!(
            r.expire(&store, &none, 100_000, 250_000),
            vec!["b".to_string()]
        );
    }
}
