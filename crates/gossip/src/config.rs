//! Protocol timing and size parameters, and the formulas derived from them.

use std::time::Duration;

/// Timing and size parameters of the protocol.
///
/// The defaults follow memberlist's LAN profile. Every node of a cluster should
/// use the same values; nothing breaks if they differ, but timeouts then stop
/// matching the other nodes' probe rates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Time between two probes of this node (one member per period), before the
    /// local health multiplier is applied. Default 1 s.
    pub probe_interval: Duration,
    /// How long a direct ping waits for its ack before indirect probes are sent,
    /// before the local health multiplier is applied; also how long an indirect
    /// prober waits before it answers with a nack. Default 500 ms.
    pub probe_timeout: Duration,
    /// How many members are asked to probe a target indirectly (SWIM's k). Default 3.
    pub indirect_probes: usize,
    /// Lifeguard: the shortest suspicion timeout, in probe intervals, scaled by
    /// `max(1, log10(n + 1))` for `n` live members. Reached once enough members
    /// independently suspect the same node. Default 4.
    pub suspicion_min_mult: u32,
    /// Lifeguard: the longest suspicion timeout, in probe intervals, with the
    /// same scaling. A suspicion starts here and shrinks with confirmations.
    /// Default 24 (memberlist's 6 × the minimum).
    pub suspicion_max_mult: u32,
    /// Lifeguard: how many independent confirmations bring the suspicion timeout
    /// down to its minimum (capped at `n - 2`). Default 3.
    pub suspicion_confirmations: u32,
    /// Lifeguard: the largest local health multiplier. Probe interval and probe
    /// timeout are multiplied by the health score plus one, which stays in
    /// `0..max_local_health`. Default 8; 1 turns the multiplier off.
    pub max_local_health: u32,
    /// Time between two gossip rounds that push queued updates to random members.
    /// Default 200 ms.
    pub gossip_interval: Duration,
    /// Members that receive a gossip message per round; 0 leaves dissemination
    /// to piggybacking on probes alone. Default 3.
    pub gossip_fanout: usize,
    /// Most updates piggybacked on one message. Default 16.
    pub max_piggyback: usize,
    /// Each update is sent `retransmit_mult × ceil(log10(n + 1))` times by each
    /// node that learns it. Default 4.
    pub retransmit_mult: u32,
    /// Time between two full-state exchanges with a random live member (and one
    /// with a random dead member, to heal partitions). Scaled up for clusters of
    /// more than 32 members, as in memberlist. Default 30 s.
    pub push_pull_interval: Duration,
    /// First wait before a join is retried with every seed; doubles up to
    /// `push_pull_interval` until a seed answers. Default 1 s.
    pub join_retry_interval: Duration,
    /// After the first answer to a join, another full-state exchange with a
    /// random member follows this much later, and again as long as an exchange
    /// teaches something new: it picks up the members that joined at the same
    /// time and that gossip missed. Default 5 s.
    pub join_sync_delay: Duration,
    /// How long dead and left members are kept (so stale news about them is
    /// recognised and they can refute) before they are forgotten. Default 1 h.
    pub dead_retention: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: 3,
            suspicion_min_mult: 4,
            suspicion_max_mult: 24,
            suspicion_confirmations: 3,
            max_local_health: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            max_piggyback: 16,
            retransmit_mult: 4,
            push_pull_interval: Duration::from_secs(30),
            join_retry_interval: Duration::from_secs(1),
            join_sync_delay: Duration::from_secs(5),
            dead_retention: Duration::from_secs(3600),
        }
    }
}

/// Why a [`Config`] is refused by [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A duration that paces a timer is zero, which would spin the driver.
    #[error("gossip {0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The probe timeout does not leave room for indirect probes in the period.
    #[error(
        "gossip probe_timeout ({timeout:?}) must be shorter than probe_interval ({interval:?})"
    )]
    ProbeTimeoutTooLong {
        /// The configured probe timeout.
        timeout: Duration,
        /// The configured probe interval.
        interval: Duration,
    },
    /// A multiplier or count that must be at least one is zero.
    #[error("gossip {0} must be at least 1")]
    Zero(&'static str),
    /// The longest suspicion timeout is shorter than the shortest.
    #[error("gossip suspicion_max_mult ({max}) must be at least suspicion_min_mult ({min})")]
    SuspicionBounds {
        /// The configured minimum multiplier.
        min: u32,
        /// The configured maximum multiplier.
        max: u32,
    },
}

impl Config {
    /// Checks that the parameters can drive the protocol; the driver calls it
    /// once when it reads its configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, d) in [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("gossip_interval", self.gossip_interval),
            ("push_pull_interval", self.push_pull_interval),
            ("join_retry_interval", self.join_retry_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::ProbeTimeoutTooLong {
                timeout: self.probe_timeout,
                interval: self.probe_interval,
            });
        }
        for (name, v) in [
            ("suspicion_min_mult", self.suspicion_min_mult),
            ("max_local_health", self.max_local_health),
            ("retransmit_mult", self.retransmit_mult),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.max_piggyback == 0 {
            return Err(ConfigError::Zero("max_piggyback"));
        }
        if self.suspicion_max_mult < self.suspicion_min_mult {
            return Err(ConfigError::SuspicionBounds {
                min: self.suspicion_min_mult,
                max: self.suspicion_max_mult,
            });
        }
        Ok(())
    }

    /// The `(min, max)` suspicion timeout for a cluster of `n` live members.
    pub(crate) fn suspicion_bounds(&self, n: usize) -> (Duration, Duration) {
        let scale = ((n + 1) as f64).log10().max(1.0);
        let base = self.probe_interval.mul_f64(scale);
        (
            base * self.suspicion_min_mult,
            base * self.suspicion_max_mult,
        )
    }

    /// How many times each node sends one update, for `n` live members.
    pub(crate) fn retransmit_limit(&self, n: usize) -> u32 {
        let log = ((n + 1) as f64).log10().ceil().max(1.0) as u32;
        self.retransmit_mult * log
    }

    /// The push-pull interval for `n` live members: memberlist's scaling, which
    /// adds one interval per doubling above 32 members to bound the bandwidth.
    pub(crate) fn push_pull_period(&self, n: usize) -> Duration {
        const THRESHOLD: f64 = 32.0;
        if n as f64 <= THRESHOLD {
            return self.push_pull_interval;
        }
        let mult = ((n as f64).log2() - THRESHOLD.log2()).ceil() as u32 + 1;
        self.push_pull_interval * mult
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_bad_ones_are_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        let c = Config {
            probe_timeout: Duration::from_secs(2),
            ..Config::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ProbeTimeoutTooLong { .. })
        ));
        let c = Config {
            gossip_interval: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroDuration("gossip_interval"))
        );
        let c = Config {
            suspicion_max_mult: 2,
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::SuspicionBounds { min: 4, max: 2 })
        );
    }

    #[test]
    fn derived_limits_grow_logarithmically_with_cluster_size() {
        let c = Config::default();
        assert_eq!(c.retransmit_limit(1), 4);
        assert_eq!(c.retransmit_limit(9), 4);
        assert_eq!(c.retransmit_limit(10), 8);
        assert_eq!(c.retransmit_limit(1000), 16);
        let (min, max) = c.suspicion_bounds(3);
        assert_eq!(
            (min, max),
            (Duration::from_secs(4), Duration::from_secs(24))
        );
        let (min, _) = c.suspicion_bounds(99);
        assert_eq!(min, Duration::from_secs(8));
        assert_eq!(c.push_pull_period(32), Duration::from_secs(30));
        assert_eq!(c.push_pull_period(64), Duration::from_secs(60));
        assert_eq!(c.push_pull_period(100), Duration::from_secs(90));
    }
}
