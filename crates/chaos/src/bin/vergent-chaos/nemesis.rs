//! Applies the seeded schedule to the running cluster, one fault at a time,
//! and heals everything at the end.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vergent_chaos::check::SkewWindow;
use vergent_chaos::proxy::{Faults, ProxyHandle};
use vergent_chaos::schedule::{Fault, Step};

use crate::cluster::{ClockMode, Cluster};
use crate::net::Firewall;

/// A fault as it happened.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Applied {
    /// Ms from the workload's start when it was applied.
    pub(crate) at_ms: u64,
    /// Ms it was held.
    pub(crate) held_ms: u64,
    /// The fault.
    pub(crate) fault: Fault,
}

/// A node process that exited without the nemesis killing it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SelfExit {
    /// The node.
    pub(crate) node: String,
    /// Ms from the workload's start when it was noticed.
    pub(crate) at_ms: u64,
    /// Its exit status.
    pub(crate) status: String,
    /// Whether a fault in progress explains it (a failing disk stops a node on purpose).
    pub(crate) expected: bool,
}

/// The fault injector.
pub(crate) struct Nemesis {
    /// The cluster it acts on.
    pub(crate) cluster: Cluster,
    firewall: Option<Firewall>,
    proxies: Vec<ProxyHandle>,
    /// What was applied, in order.
    pub(crate) applied: Vec<Applied>,
    /// When each skewed node's clock could be wrong (wall-clock ms).
    pub(crate) skew_windows: Vec<SkewWindow>,
    /// Node processes that exited on their own.
    pub(crate) self_exits: Vec<SelfExit>,
    /// The node whose fsync is failing, if any.
    disk_fault: Option<usize>,
    /// Where that node's log stood when its fsync started failing.
    disk_log_from: u64,
    /// Nodes whose fsync failed and which have not exited since, with where
    /// their log stood then: a fail-stop that comes after the fault was
    /// healed (an fsync that failed just before) is still the fault's doing.
    disk_failed: std::collections::HashMap<usize, u64>,
    /// Per node: held for writing to stop its clients.
    gates: Vec<crate::workload::Gate>,
    /// The wiped node and the gate guard holding its clients back.
    wiped: Option<(usize, tokio::sync::OwnedRwLockWriteGuard<()>)>,
    /// Whether a wipe waits for the node's log to reach its peers first
    /// (`false`: the quorum workload, whose acknowledged writes must
    /// survive losing whatever the wiped node alone held).
    drain_wipes: bool,
}

impl Nemesis {
    /// A nemesis over `cluster`; `firewall` is `None` outside a namespace.
    pub(crate) fn new(
        cluster: Cluster,
        firewall: Option<Firewall>,
        proxies: Vec<ProxyHandle>,
        gates: Vec<crate::workload::Gate>,
        drain_wipes: bool,
    ) -> Self {
        Self {
            drain_wipes,
            cluster,
            firewall,
            proxies,
            applied: Vec::new(),
            skew_windows: Vec::new(),
            self_exits: Vec::new(),
            disk_fault: None,
            disk_log_from: 0,
            disk_failed: std::collections::HashMap::new(),
            gates,
            wiped: None,
        }
    }

    /// Runs `steps` from `start` until done or `stop`.
    pub(crate) async fn run(
        &mut self,
        steps: &[Step],
        start: Instant,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        for step in steps {
            if !self.wait_until(start + step.start, start, stop).await {
                return Ok(());
            }
            tracing::info!("nemesis: {}", step.fault);
            let at = start.elapsed();
            self.apply(&step.fault, start).await?;
            let held_until = Instant::now() + step.hold;
            let interrupted = !self.wait_until(held_until, start, stop).await;
            self.heal(&step.fault, start).await?;
            tracing::info!("nemesis: healed {}", step.fault);
            self.applied.push(Applied {
                at_ms: millis(at),
                held_ms: millis(start.elapsed().saturating_sub(at)),
                fault: step.fault.clone(),
            });
            if interrupted {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sleeps until `when`, watching for nodes that exit on their own;
    /// false when stopped early.
    async fn wait_until(
        &mut self,
        when: Instant,
        start: Instant,
        stop: &CancellationToken,
    ) -> bool {
        loop {
            self.note_exits(start);
            let tick = (Instant::now() + Duration::from_millis(200)).min(when);
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep_until(tick) => {}
            }
            if Instant::now() >= when {
                return true;
            }
        }
    }

    fn note_exits(&mut self, start: Instant) {
        for (i, status) in self.cluster.reap_exited() {
            let node = self.cluster.nodes[i].id.clone();
            let after_fault = self
                .disk_failed
                .remove(&i)
                .is_some_and(|from| self.cluster.log_since(i, from).contains("storage failed"));
            let expected = self.disk_fault == Some(i) || after_fault;
            if expected {
                tracing::info!("{node} stopped itself under the disk fault ({status})");
            } else {
                tracing::error!("{node} exited unexpectedly: {status}");
            }
            self.self_exits.push(SelfExit {
                node,
                at_ms: millis(start.elapsed()),
                status,
                expected,
            });
        }
    }

    async fn restart_with(&mut self, i: usize, clock: ClockMode) -> anyhow::Result<()> {
        self.cluster.kill(i).await?;
        self.cluster.nodes[i].clock = clock;
        self.cluster.start(i)
    }

    async fn apply(&mut self, fault: &Fault, start: Instant) -> anyhow::Result<()> {
        match fault {
            Fault::Kill { nodes } => {
                for &i in nodes {
                    self.cluster.kill(i).await?;
                }
            }
            Fault::Pause { nodes } => {
                for &i in nodes {
                    self.cluster.pause(i).await?;
                }
            }
            Fault::Partition { drops, .. } => {
                self.firewall()?.apply(drops, None).await?;
            }
            Fault::Loss { percent } => {
                self.firewall()?.apply(&[], Some(*percent)).await?;
            }
            Fault::Delay {
                delay_ms,
                jitter_ms,
            } => {
                for p in &self.proxies {
                    p.set(Faults {
                        delay_ms: *delay_ms,
                        jitter_ms: *jitter_ms,
                        loss_percent: 0,
                    });
                }
            }
            Fault::Skew {
                node,
                offset_ms,
                faketime,
            } => {
                self.skew_windows.push(SkewWindow {
                    node: self.cluster.nodes[*node].id.clone(),
                    from_ms: crate::workload::wall_ms(),
                    until_ms: u64::MAX,
                });
                let mode = if *faketime {
                    ClockMode::Faketime(*offset_ms)
                } else {
                    ClockMode::Offset(*offset_ms)
                };
                self.restart_with(*node, mode).await?;
            }
            Fault::Disk { node } => {
                self.disk_fault = Some(*node);
                self.disk_log_from = self.cluster.log_len(*node);
                self.disk_failed.insert(*node, self.disk_log_from);
                self.cluster.break_fsync(*node).await?;
            }
            Fault::Wipe { node } => {
                // A wiped disk loses what it alone held: at consistency one,
                // writes not yet replicated. That is not what this fault
                // tests at `one` (rebuild is), so the node's clients stop and
                // its log drains to every peer first. At `quorum` it is: a
                // write acknowledged there is on a majority already.
                let guard = self.gates[*node].clone().write_owned().await;
                if self.drain_wipes {
                    self.wait_replicated(*node).await;
                }
                self.cluster.kill(*node).await?;
                self.cluster.wipe(*node)?;
                self.wiped = Some((*node, guard));
            }
        }
        self.note_exits(start);
        Ok(())
    }

    /// Waits (up to 30 s) until every peer acknowledged node `i`'s log and
    /// then completed a repair session with it. The log alone is not enough:
    /// a peer acknowledges, but leaves to repair, records older than the
    /// log's horizon (grace minus a margin), so after a long partition a
    /// drained log can still leave writes that only node `i` holds.
    async fn wait_replicated(&self, i: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let Ok(client) = self
            .cluster
            .connect(i, Duration::from_secs(2), deadline)
            .await
        else {
            tracing::warn!("nemesis: cannot reach n{} before wiping it", i + 1);
            return;
        };
        let peers = self.cluster.nodes.len() - 1;
        let mut drained_at_ms = None;
        while std::time::Instant::now() < deadline {
            if let Ok(s) = client.status().await
                && s.replication.len() >= peers
                && s.replication.iter().all(|(_, _, lag)| *lag == 0)
            {
                let since = *drained_at_ms.get_or_insert_with(crate::workload::wall_ms);
                let repaired = s
                    .repairs
                    .iter()
                    .filter(|r| r.last_repair_ms > since)
                    .count();
                if repaired >= peers {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            "nemesis: n{}'s log did not drain and repair with every peer within 30 s; wiping anyway",
            i + 1
        );
    }

    /// Restarts the wiped node empty and lets its clients go once it says
    /// it has rebuilt (up to 120 s).
    async fn rebuild(&mut self) -> anyhow::Result<()> {
        let Some((i, guard)) = self.wiped.take() else {
            return Ok(());
        };
        self.cluster.start(i)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let client = self
            .cluster
            .connect(i, Duration::from_secs(2), deadline)
            .await?;
        loop {
            match client.status().await {
                Ok(s) if s.state == "serving" => break,
                _ if std::time::Instant::now() >= deadline => {
                    anyhow::bail!("n{} did not finish bootstrapping within 120 s", i + 1)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        drop(guard);
        Ok(())
    }

    async fn heal(&mut self, fault: &Fault, start: Instant) -> anyhow::Result<()> {
        match fault {
            Fault::Kill { nodes } => {
                for &i in nodes {
                    if !self.cluster.is_up(i) {
                        self.cluster.start(i)?;
                    }
                }
            }
            Fault::Pause { nodes } => {
                for &i in nodes {
                    self.cluster.resume(i).await?;
                }
            }
            Fault::Partition { .. } | Fault::Loss { .. } => {
                self.firewall()?.heal().await?;
            }
            Fault::Delay { .. } => {
                for p in &self.proxies {
                    p.clear();
                }
            }
            Fault::Skew {
                node, offset_ms, ..
            } => {
                self.restart_with(*node, ClockMode::Real).await?;
                self.close_skew_window(*node, offset_ms.unsigned_abs());
            }
            Fault::Disk { node } => {
                self.cluster.stop_strace(*node).await;
                // Give a node that stops itself on a failed fsync the moment it
                // needs to exit, so the exit is attributed to this fault: the
                // time to drain and close when it logged the failure (a fault
                // healed at once can have hit an fsync just before), else a
                // moment for a failure still on its way.
                let failing = self
                    .cluster
                    .log_since(*node, self.disk_log_from)
                    .contains("storage failed");
                let grace = Instant::now()
                    + if failing {
                        Duration::from_secs(20)
                    } else {
                        Duration::from_millis(500)
                    };
                while self.cluster.is_up(*node) && Instant::now() < grace {
                    self.note_exits(start);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                self.note_exits(start);
                self.disk_fault = None;
                if !self.cluster.is_up(*node) {
                    self.cluster.start(*node)?;
                }
            }
            Fault::Wipe { .. } => self.rebuild().await?,
        }
        self.note_exits(start);
        Ok(())
    }

    /// Heals everything: rules removed, proxies cleared, nodes resumed,
    /// restarted with true clocks, and started if down.
    pub(crate) async fn heal_all(&mut self, start: Instant) -> anyhow::Result<()> {
        if let Some(fw) = &self.firewall {
            fw.heal().await.context("remove the packet rules")?;
        }
        for p in &self.proxies {
            p.clear();
        }
        self.note_exits(start);
        self.rebuild().await?;
        for i in 0..self.cluster.nodes.len() {
            self.cluster.stop_strace(i).await;
            self.cluster.resume(i).await?;
            if let ClockMode::Offset(ms) | ClockMode::Faketime(ms) = self.cluster.nodes[i].clock {
                self.restart_with(i, ClockMode::Real).await?;
                self.close_skew_window(i, ms.unsigned_abs());
            } else if !self.cluster.is_up(i) {
                self.cluster.start(i)?;
            }
        }
        Ok(())
    }

    /// Brings back every node that is down now, whatever took it down (a
    /// fail-stop that came after its fault was healed, say): the run must
    /// still check a whole cluster. Returns the nodes it started.
    pub(crate) fn revive(&mut self, start: Instant) -> anyhow::Result<Vec<String>> {
        self.note_exits(start);
        let mut started = Vec::new();
        for i in 0..self.cluster.nodes.len() {
            if !self.cluster.is_up(i) {
                self.cluster.start(i)?;
                started.push(self.cluster.nodes[i].id.clone());
            }
        }
        Ok(started)
    }

    /// A node back on a true clock still stamps from where its wrong clock
    /// got to until real time passes that: `ahead_ms` plus the restart.
    fn close_skew_window(&mut self, node: usize, ahead_ms: u64) {
        let id = &self.cluster.nodes[node].id;
        let until = crate::workload::wall_ms() + ahead_ms + 1_000;
        for w in self
            .skew_windows
            .iter_mut()
            .filter(|w| &w.node == id && w.until_ms == u64::MAX)
        {
            w.until_ms = until;
        }
    }

    fn firewall(&self) -> anyhow::Result<&Firewall> {
        self.firewall
            .as_ref()
            .context("packet faults need the run's network namespace")
    }

    /// Proxy counters summed over every node: forwarded, delayed, dropped.
    pub(crate) fn proxy_totals(&self) -> (u64, u64, u64) {
        self.proxies.iter().fold((0, 0, 0), |(f, d, x), p| {
            let s = p.stats();
            (f + s.forwarded, d + s.delayed, x + s.dropped)
        })
    }
}

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
