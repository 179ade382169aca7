//! The node's event metrics: counters and histograms that the layers record
//! into as things happen (requests, write groups, consensus rounds). Values
//! that already exist as state (replication cursors, members, engine memory)
//! are not copied here: the HTTP frontend reads them from the status
//! snapshots at scrape time. Depends on nothing else in the crate.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels of one served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The operation (`get`, `put`, `cas`, `status`...).
    pub(crate) op: &'static str,
    /// The level it was served at (`one`, `quorum`, `all`, `serial`; empty
    /// for operations without one).
    pub(crate) consistency: &'static str,
    /// `OK`, else the Vergent error code or, without one, the gRPC code.
    pub(crate) code: &'static str,
}

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LatencyLabels {
    pub(crate) op: &'static str,
    pub(crate) consistency: &'static str,
}

/// Labels of a finished consensus round.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RoundLabels {
    /// How it ended: `applied`, `not_applied`, `read`, `contention`, ...
    pub(crate) outcome: &'static str,
}

/// Every event metric of one node, registered under the `vergent_` prefix.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<LatencyLabels, Histogram>,
    write_group_writes: Histogram,
    consensus_rounds: Family<RoundLabels, Counter>,
    consensus_round_trips: Histogram,
}

/// Latency buckets from 100 µs to ~6.5 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

impl Metrics {
    /// A fresh set, every series at zero.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("vergent");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Client requests served, by operation, consistency level and outcome code",
            requests.clone(),
        );
        let request_seconds = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> _,
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer, by operation and consistency level",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let write_group_writes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "write_group_writes",
            "Writes committed together in one group (one RocksDB batch, one WAL sync)",
            write_group_writes.clone(),
        );
        let consensus_rounds = Family::<RoundLabels, Counter>::default();
        registry.register(
            "consensus_rounds",
            "Per-key consensus rounds this node coordinated, by how they ended",
            consensus_rounds.clone(),
        );
        let consensus_round_trips = Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0]);
        registry.register(
            "consensus_round_trips",
            "Message round trips to the acceptors per consensus round (1: the proposer repeated, 2: uncontended)",
            consensus_round_trips.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            write_group_writes,
            consensus_rounds,
            consensus_round_trips,
        }
    }

    /// Counts a served request and its latency.
    pub(crate) fn request(&self, labels: RequestLabels, seconds: f64) {
        self.request_seconds
            .get_or_create(&LatencyLabels {
                op: labels.op,
                consistency: labels.consistency,
            })
            .observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts one committed write group of `writes` writes.
    pub(crate) fn write_group(&self, writes: usize) {
        self.write_group_writes.observe(writes as f64);
    }

    /// Counts a finished consensus round and its round trips.
    pub(crate) fn consensus_round(&self, outcome: &'static str, round_trips: u32) {
        self.consensus_rounds
            .get_or_create(&RoundLabels { outcome })
            .inc();
        self.consensus_round_trips.observe(f64::from(round_trips));
    }

    /// The registry, for the exposition.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// The name of a gRPC code, as Prometheus label values spell codes.
pub(crate) fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, m.registry()).expect("encode");
        out
    }

    #[test]
    fn a_request_is_counted_with_its_labels_and_timed_in_base_units() {
        let m = Metrics::new();
        m.request(
            RequestLabels {
                op: "put",
                consistency: "quorum",
                code: "OK",
            },
            0.003,
        );
        let t = text(&m);
        assert!(
            t.contains(r#"vergent_requests_total{op="put",consistency="quorum",code="OK"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(
                r#"vergent_request_duration_seconds_count{op="put",consistency="quorum"} 1"#
            ),
            "{t}"
        );
        assert!(
            t.contains("# UNIT vergent_request_duration_seconds seconds"),
            "{t}"
        );
    }

    #[test]
    fn rounds_and_write_groups_are_counted() {
        let m = Metrics::new();
        m.consensus_round("applied", 2);
        m.consensus_round("applied", 1);
        m.write_group(5);
        let t = text(&m);
        assert!(
            t.contains(r#"vergent_consensus_rounds_total{outcome="applied"} 2"#),
            "{t}"
        );
        assert!(t.contains("vergent_consensus_round_trips_sum 3.0"), "{t}");
        assert!(t.contains("vergent_write_group_writes_count 1"), "{t}");
    }
}
