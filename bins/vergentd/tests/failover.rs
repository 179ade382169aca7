//! A client with several endpoints on real `vergentd` processes over
//! loopback, three nodes: when the node it uses is killed, its next get and
//! its next put at ONE succeed through another endpoint within the call's
//! deadline; a client given one endpoint learns the others from the members;
//! a CAS whose node dies under it, or that finds its node dead, is reported,
//! never repeated by the client.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, signal, unread_bytes_at};
use vergent_client::{Client, ClientConfig, Consistency, Expect, PutOptions};

/// How long the cluster may take to form, or a replica to catch up.
const DEADLINE: Duration = Duration::from_secs(60);
/// Each call's deadline for the clients under test, retries included.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

const AT_ONE: PutOptions = PutOptions {
    ttl: None,
    consistency: Some(Consistency::One),
};

/// A client given `endpoints` of `cluster`, in that order.
async fn client_of(cluster: &Cluster, endpoints: &[usize]) -> Client {
    let endpoints = endpoints.iter().map(|&i| cluster.addr(i)).collect();
    let mut config = ClientConfig::with_endpoints(endpoints, cluster.certs.client.clone());
    config.request_timeout = CALL_DEADLINE;
    let client = Client::connect(config).await.expect("connect");
    assert_eq!(
        client.endpoint(),
        cluster.addr(0),
        "connected through node 0"
    );
    client
}

/// Waits until every node serves and holds a 3-voter configuration (so a
/// CAS needs any two of them).
async fn ready(cluster: &Cluster) {
    for i in 0..3 {
        let c = cluster.client(i).await;
        let until = Instant::now() + DEADLINE;
        loop {
            let s = c.status().await.expect("status");
            if s.state == "serving" && s.voting.as_ref().is_some_and(|v| v.voters.len() == 3) {
                break;
            }
            assert!(
                Instant::now() < until,
                "node {i} not ready within {DEADLINE:?}: {} {:?}",
                s.state,
                s.voting
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until node `i` holds `value` under `key`.
async fn holds(cluster: &Cluster, i: usize, key: &str, value: &[u8]) {
    let c = cluster.client(i).await;
    let until = Instant::now() + DEADLINE;
    while common::get_serving(&c, key)
        .await
        .map(|e| e.value)
        .as_deref()
        != Some(value)
    {
        assert!(
            Instant::now() < until,
            "node {i} lacks {key} after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn after_its_node_is_killed_the_next_get_and_put_at_one_succeed_through_another_endpoint_within_the_deadline()
 {
    let cluster = Cluster::new(3);
    let a = cluster.start(0);
    let _b = cluster.start(1);
    let _c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        ready(&cluster).await;
        let reader = client_of(&cluster, &[0, 1, 2]).await;
        let writer = client_of(&cluster, &[0, 1, 2]).await;
        let learner = client_of(&cluster, &[0]).await;
        let until = Instant::now() + DEADLINE;
        while learner.endpoints().len() < 3 {
            let added = learner.discover().await.expect("discover");
            eprintln!("discovered {added:?}");
            assert!(
                Instant::now() < until,
                "only {:?} learned from the members",
                learner.endpoints()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut learned = learner.endpoints();
        learned.sort();
        let mut all: Vec<String> = (0..3).map(|i| cluster.addr(i)).collect();
        all.sort();
        assert_eq!(learned, all);

        writer
            .put_with("k", "before", AT_ONE)
            .await
            .expect("put through node 0");
        // Whichever node a client fails over to holds the value.
        holds(&cluster, 1, "k", b"before").await;
        holds(&cluster, 2, "k", b"before").await;

        a.kill9();
        let dead = cluster.addr(0);

        let start = Instant::now();
        let got = reader.get("k").await.expect("get after node 0 died");
        assert_eq!(got.map(|e| e.value).as_deref(), Some(&b"before"[..]));
        assert!(start.elapsed() < CALL_DEADLINE, "{:?}", start.elapsed());
        assert_ne!(reader.endpoint(), dead, "the reader moved on");

        let start = Instant::now();
        writer
            .put_with("k", "after", AT_ONE)
            .await
            .expect("put at ONE after node 0 died");
        assert!(start.elapsed() < CALL_DEADLINE, "{:?}", start.elapsed());
        assert_ne!(writer.endpoint(), dead, "the writer moved on");
        // Read-your-writes on the node it moved to.
        let got = writer.get("k").await.expect("get").map(|e| e.value);
        assert_eq!(got.as_deref(), Some(&b"after"[..]));

        let got = learner
            .get("k")
            .await
            .expect("get through a learned endpoint");
        assert!(got.is_some());
        assert_ne!(learner.endpoint(), dead, "the learner moved on");
    });
}

#[test]
fn a_cas_whose_node_dies_under_it_or_is_found_dead_is_reported_not_retried() {
    let cluster = Cluster::new(3);
    let a = cluster.start(0);
    let _b = cluster.start(1);
    let _c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        ready(&cluster).await;
        let client = client_of(&cluster, &[0, 1, 2]).await;
        let idle = client_of(&cluster, &[0, 1, 2]).await;
        let dead = cluster.addr(0);
        let port = cluster.ports[0];

        // Node 0 stops reading; the CAS reaches its socket, then it dies.
        signal(a.pid(), "STOP");
        let before = unread_bytes_at(port);
        let cas = {
            let client = client.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let r = client
                    .compare_and_set("cas", Expect::Absent, Some(b"first".to_vec()))
                    .await;
                (r, start.elapsed())
            })
        };
        let until = Instant::now() + DEADLINE;
        while unread_bytes_at(port) <= before {
            assert!(Instant::now() < until, "the CAS never reached node 0");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        a.kill9();
        let (r, took) = cas.await.expect("cas task");
        let e =
            r.expect_err("a CAS in flight on a dying node fails; a retry would have applied it");
        eprintln!("CAS under a dying node: {e} after {took:?}");
        assert!(e.is_connection() && e.is_outcome_unknown(), "{e:?}");
        assert!(!e.is_retryable(), "{e:?}");
        assert!(
            took < CALL_DEADLINE,
            "reported at once, not at the deadline"
        );
        assert_ne!(client.endpoint(), dead, "later calls go elsewhere");
        // Resolve the unknown outcome as the docs say: a SERIAL read. Node 0
        // was stopped, so the CAS cannot have applied.
        let now = client
            .get_with("cas", Some(Consistency::Serial))
            .await
            .expect("SERIAL read through another node");
        assert_eq!(now, None);

        // A CAS that finds its node dead was never sent, and is still left
        // to the caller.
        assert_eq!(idle.endpoint(), dead);
        let e = idle
            .compare_and_set("cas", Expect::Absent, Some(b"second".to_vec()))
            .await
            .expect_err("a CAS through a dead node fails; a retry would have applied it");
        eprintln!("CAS through a dead node: {e}");
        assert!(e.is_not_sent() && e.is_retryable(), "{e:?}");
        assert_ne!(idle.endpoint(), dead, "later calls go elsewhere");
        let now = client
            .get_with("cas", Some(Consistency::Serial))
            .await
            .expect("SERIAL read");
        assert_eq!(now, None, "neither CAS applied");

        // The caller's own retry goes through the next endpoint.
        let r = idle
            .compare_and_set("cas", Expect::Absent, Some(b"second".to_vec()))
            .await
            .expect("the caller's retry");
        assert!(r.applied);
    });
}
