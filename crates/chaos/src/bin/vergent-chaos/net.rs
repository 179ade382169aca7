//! Packet faults with nftables, inside the run's own network namespace only.
//!
//! Rules drop on the input hook: an output-side drop hands the sender EPERM,
//! which no real network does. Only UDP (the peer protocol) is touched; client
//! traffic (TCP) always gets through, as from a client outside the partition.

use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const TABLE: &str = "vergent_chaos";

/// Builds and installs the rule set.
pub(crate) struct Firewall {
    /// Ports each node sends peer packets from (its own, and its proxy's).
    send_ports: Vec<Vec<u16>>,
    /// Ports each node's peer packets arrive at (its own, and its proxy's).
    recv_ports: Vec<Vec<u16>>,
    /// The nodes' own ports: every packet leaves one of these exactly once.
    node_ports: Vec<u16>,
}

fn set(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{{ {} }}", list.join(", "))
}

impl Firewall {
    /// `node_ports[i]` is node i's port; `proxy_ports[i]` its delay proxy's, if any.
    ///
    /// With proxies, a packet from A to B travels A→proxy(B)→B, and B's
    /// packets to A on A's connection come back proxy(B)→A; so "from A" means
    /// a source port of A or of A's proxy, and "to B" a destination port of B
    /// or of B's proxy. No other combination of those ports occurs.
    pub(crate) fn new(node_ports: &[u16], proxy_ports: Option<&[u16]>) -> Self {
        let both = |i: usize| {
            let mut v = vec![node_ports[i]];
            if let Some(p) = proxy_ports {
                v.push(p[i]);
            }
            v
        };
        Self {
            send_ports: (0..node_ports.len()).map(both).collect(),
            recv_ports: (0..node_ports.len()).map(both).collect(),
            node_ports: node_ports.to_vec(),
        }
    }

    /// The nftables script that drops the directed links `drops` and a
    /// `loss` percent of all peer packets.
    pub(crate) fn script(&self, drops: &[(usize, usize)], loss: Option<u8>) -> String {
        let mut rules = Vec::new();
        for &(from, to) in drops {
            rules.push(format!(
                "udp sport {} udp dport {} drop",
                set(&self.send_ports[from]),
                set(&self.recv_ports[to])
            ));
        }
        if let Some(p) = loss.filter(|p| *p > 0) {
            // Matching the sender's own port counts each packet once, whether
            // or not it then crosses a proxy.
            rules.push(format!(
                "udp sport {} numgen random mod 100 < {p} drop",
                set(&self.node_ports)
            ));
        }
        // Declaring the table first makes the delete succeed on a clean slate.
        let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
        s.push_str(&format!(
            "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n"
        ));
        for r in rules {
            s.push_str(&format!("    {r}\n"));
        }
        s.push_str("  }\n}\n");
        s
    }

    /// Installs the rules (replacing any earlier ones).
    pub(crate) async fn apply(
        &self,
        drops: &[(usize, usize)],
        loss: Option<u8>,
    ) -> anyhow::Result<()> {
        nft(&self.script(drops, loss)).await
    }

    /// Removes every rule.
    pub(crate) async fn heal(&self) -> anyhow::Result<()> {
        nft(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n")).await
    }
}

async fn nft(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run nft (is nftables installed?)")?;
    let mut stdin = child.stdin.take().context("nft stdin")?;
    stdin
        .write_all(script.as_bytes())
        .await
        .context("write the nft script")?;
    drop(stdin);
    let out = child.wait_with_output().await.context("wait for nft")?;
    if !out.status.success() {
        bail!(
            "nft refused the rules: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_way_drop_names_the_senders_ports_and_the_receivers_ports() {
        let fw = Firewall::new(&[2001, 2002, 2003], None);
        let s = fw.script(&[(0, 2)], None);
        assert!(
            s.contains("udp sport { 2001 } udp dport { 2003 } drop"),
            "{s}"
        );
        assert!(!s.contains("2002"), "{s}");
        assert!(s.contains("hook input"), "input side only: {s}");
    }

    #[test]
    fn with_proxies_a_link_covers_both_legs_and_loss_counts_each_packet_once() {
        let fw = Firewall::new(&[2001, 2002], Some(&[3001, 3002]));
        let s = fw.script(&[(1, 0)], Some(20));
        assert!(
            s.contains("udp sport { 2002, 3002 } udp dport { 2001, 3001 } drop"),
            "{s}"
        );
        assert!(
            s.contains("udp sport { 2001, 2002 } numgen random mod 100 < 20 drop"),
            "{s}"
        );
    }
}
