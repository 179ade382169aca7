//! `vergentctl bench`: a closed-loop load generator over the Rust client, in
//! the spirit of redis-benchmark and etcd's benchmark tool.
//!
//! Each of `--clients` tasks keeps exactly one request in flight, spread
//! round-robin over `--connections` connections to the endpoints. Latencies go
//! into HDR histograms; the run is bounded by `--requests` and `--duration`
//! (and always by `--max-duration`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use vergent_client::{Client, ClientConfig, Consistency, PutOptions};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Node API addresses, HOST:PORT, comma-separated; connections spread over them.
    #[arg(long, value_delimiter = ',', required = true, env = crate::cli::env::ENDPOINTS)]
    endpoints: Vec<String>,
    #[command(flatten)]
    tls: crate::cli::TlsArgs,
    /// Requests in flight (one closed-loop task each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Connections (HTTP/2 channels), round-robin over the endpoints.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Stop after this long (measured part, after the warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many measured requests (0: no limit).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Unmeasured warm-up before the measurement starts.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Hard cap on the whole run, whatever else is asked.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    max_duration: Duration,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    key_space: u64,
    /// Key length in bytes (keys are "k" + zero-padded index).
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Operation mix PUT:GET:DELETE as weights, e.g. 50:50:0.
    #[arg(long, default_value = "50:50:0")]
    mix: String,
    /// A YCSB workload instead of --mix: a (50% update), b (5% update), c (read only), f (read-modify-write).
    #[arg(long)]
    workload: Option<String>,
    /// Key popularity: uniform or zipfian (YCSB's 0.99).
    #[arg(long, default_value = "uniform")]
    distribution: String,
    /// Consistency level of every request.
    #[arg(long, default_value = "one")]
    consistency: String,
    /// Every operation a compare-and-set instead of --mix: `distinct` (each
    /// client on keys of its own, expecting what it last wrote, so CAS
    /// applies uncontended) or `hot` (every client on one key, expecting the
    /// value it last saw: contention). Not applied counts as a miss.
    #[arg(long, value_parser = ["distinct", "hot"])]
    cas: Option<String>,
    /// Seed of the key and operation choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Before the run, put every key of the key space once (not measured, at
    /// least 64 in flight), so reads find values.
    #[arg(long)]
    preload: bool,
    /// Also measure replication lag: watch this node (HOST:PORT, one the
    /// load does not write to) and time each put from its acknowledgement
    /// to its arrival there.
    #[arg(long)]
    lag_from: Option<String>,
    /// Print one JSON line on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

/// Puts or events waiting for their other half: (key, hlc) → (when, was it
/// the acknowledgement).
type Pending = std::collections::HashMap<(Vec<u8>, u64), (Instant, bool)>;

/// Replication lag probe: matches acknowledged puts with the watch events of
/// another node; whichever comes second records the lag (0 when the event
/// came first).
#[derive(Default)]
struct LagProbe {
    pending: std::sync::Mutex<Pending>,
    hist: std::sync::Mutex<Option<Histogram<u64>>>,
}

impl LagProbe {
    fn new() -> anyhow::Result<Self> {
        let h = Histogram::new_with_bounds(1, 60_000_000, 3).context("create lag histogram")?;
        Ok(Self {
            pending: Default::default(),
            hist: std::sync::Mutex::new(Some(h)),
        })
    }

    /// `acked` is true for the client's acknowledgement, false for the
    /// watch event.
    fn note(&self, key: Vec<u8>, hlc: u64, acked: bool) {
        let now = Instant::now();
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match pending.remove(&(key.clone(), hlc)) {
            Some((first, first_was_ack)) if first_was_ack != acked => {
                let lag = if acked {
                    0
                } else {
                    now.duration_since(first).as_micros() as u64
                };
                if let Some(h) = self
                    .hist
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_mut()
                {
                    let _ = h.record(lag.clamp(1, 60_000_000));
                }
            }
            _ => {
                pending.insert((key, hlc), (now, acked));
            }
        }
    }

    /// The histogram, and how many acknowledged puts were never seen.
    fn finish(&self) -> (Histogram<u64>, u64) {
        let unseen = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|(_, acked)| *acked)
            .count() as u64;
        let h = self
            .hist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| Histogram::new(3).expect("valid precision"));
        (h, unseen)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Put,
    Get,
    Delete,
    /// YCSB F: a read then a write of the same key, timed as one operation.
    ReadModifyWrite,
    /// A compare-and-set (`--cas`).
    Cas,
}

impl Op {
    const ALL: [Self; 5] = [
        Self::Put,
        Self::Get,
        Self::Delete,
        Self::ReadModifyWrite,
        Self::Cas,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::ReadModifyWrite => "rmw",
            Self::Cas => "cas",
        }
    }
}

/// Weights of each operation, in `Op::ALL` order.
fn parse_mix(args: &BenchArgs) -> anyhow::Result<[u32; 4]> {
    if let Some(w) = &args.workload {
        return Ok(match w.to_ascii_lowercase().as_str() {
            "a" => [50, 50, 0, 0],
            "b" => [5, 95, 0, 0],
            "c" => [0, 100, 0, 0],
            "f" => [0, 50, 0, 50],
            other => bail!("unknown --workload {other:?}: expected a, b, c or f"),
        });
    }
    let parts: Vec<u32> = args
        .mix
        .split(':')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("parse --mix {:?} as PUT:GET:DELETE weights", args.mix))?;
    let w = match parts.as_slice() {
        [p, g] => [*p, *g, 0, 0],
        [p, g, d] => [*p, *g, *d, 0],
        _ => bail!("--mix takes PUT:GET or PUT:GET:DELETE weights, e.g. 50:50:0"),
    };
    if w.iter().sum::<u32>() == 0 {
        bail!("--mix weights must not all be 0");
    }
    Ok(w)
}

fn parse_consistency(s: &str) -> anyhow::Result<Consistency> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "one" => Consistency::One,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "serial" => Consistency::Serial,
        other => bail!("unknown --consistency {other:?}: expected one, quorum, all or serial"),
    })
}

struct Keys {
    space: u64,
    size: usize,
    zipf: Option<Zipf<f64>>,
}

impl Keys {
    fn pick(&self, rng: &mut StdRng) -> Vec<u8> {
        let i = match &self.zipf {
            Some(z) => (z.sample(rng) as u64).saturating_sub(1).min(self.space - 1),
            None => rng.random_range(0..self.space),
        };
        self.name(i)
    }

    /// The key with index `i`.
    fn name(&self, i: u64) -> Vec<u8> {
        let digits = self.size.saturating_sub(1).max(1);
        format!("k{i:0digits$}").into_bytes()
    }
}

/// What one client task measured.
struct Tally {
    /// Replication lag (µs) and the acknowledged puts never seen, with
    /// `--lag-from`.
    lag: Option<(Histogram<u64>, u64)>,
    hist: Vec<Histogram<u64>>,
    errors: std::collections::BTreeMap<String, u64>,
    misses: u64,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        let hist = (0..Op::ALL.len())
            .map(|_| Histogram::new_with_bounds(1, 60_000_000, 3))
            .collect::<Result<_, _>>()
            .context("create latency histograms")?;
        Ok(Self {
            hist,
            errors: Default::default(),
            misses: 0,
            lag: None,
        })
    }

    fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            a.add(b).context("merge histograms")?;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.misses += other.misses;
        Ok(())
    }
}

fn error_kind(e: &vergent_client::Error) -> String {
    match e {
        vergent_client::Error::Server {
            code, error_code, ..
        } => match error_code {
            Some(c) => c.as_str_name().to_string(),
            None => format!("{code:?}"),
        },
        vergent_client::Error::Timeout(_) => "TIMEOUT".into(),
        vergent_client::Error::Connect { .. } => "CONNECT".into(),
        vergent_client::Error::Transport { .. } => "TRANSPORT".into(),
        other => other.to_string(),
    }
}

/// Puts every key once, `clients` at a time, within `limit`.
async fn preload(
    conns: &[Client],
    keys: &Arc<Keys>,
    value: &Arc<Vec<u8>>,
    clients: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + limit;
    let mut tasks = Vec::new();
    for t in 0..clients {
        let (client, keys, value, next) = (
            conns[t % conns.len()].clone(),
            keys.clone(),
            value.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys.space || Instant::now() >= deadline {
                    return Ok::<_, vergent_client::Error>(());
                }
                client.put(keys.name(i), value.as_slice()).await?;
            }
        }));
    }
    for t in tasks {
        t.await
            .context("preload task")?
            .context("preload the key space")?;
    }
    Ok(())
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mix = parse_mix(&args)?;
    let consistency = parse_consistency(&args.consistency)?;
    if args.clients == 0 || args.connections == 0 || args.key_space == 0 {
        bail!("--clients, --connections and --key-space must be at least 1");
    }
    let zipf = match args.distribution.to_ascii_lowercase().as_str() {
        "uniform" => None,
        "zipfian" => {
            Some(Zipf::new(args.key_space as f64, 0.99).context("build the zipfian distribution")?)
        }
        other => bail!("unknown --distribution {other:?}: expected uniform or zipfian"),
    };
    let keys = Arc::new(Keys {
        space: args.key_space,
        size: args.key_size,
        zipf,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(bench(args, mix, consistency, keys))
}

async fn bench(
    args: BenchArgs,
    mix: [u32; 4],
    consistency: Consistency,
    keys: Arc<Keys>,
) -> anyhow::Result<()> {
    let tls = args.tls.files();
    let mut conns = Vec::new();
    for i in 0..args.connections {
        let endpoint = &args.endpoints[i % args.endpoints.len()];
        let client = Client::connect(measured(ClientConfig::new(endpoint.clone(), tls.clone())))
            .await
            .with_context(|| format!("connect to {endpoint}"))?;
        conns.push(client);
    }
    let total_weight: u32 = mix.iter().sum();
    let value: Arc<Vec<u8>> = Arc::new(vec![b'v'; args.value_size]);
    if args.preload {
        // At least 64 in flight: a 1-client run should not wait minutes for it.
        preload(
            &conns,
            &keys,
            &value,
            args.clients.max(64),
            args.max_duration,
        )
        .await?;
    }
    let probe = match &args.lag_from {
        None => None,
        Some(endpoint) => {
            let watcher =
                Client::connect(measured(ClientConfig::new(endpoint.clone(), tls.clone())))
                    .await
                    .with_context(|| format!("connect to {endpoint}"))?;
            let mut stream = watcher
                .watch(Vec::new())
                .await
                .with_context(|| format!("watch {endpoint}"))?;
            let probe = Arc::new(LagProbe::new()?);
            let p = probe.clone();
            tokio::spawn(async move {
                use futures::StreamExt as _;
                while let Some(Ok(event)) = stream.next().await {
                    if !event.local {
                        p.note(event.key, event.version.hlc.as_u64(), false);
                    }
                }
            });
            Some(probe)
        }
    };
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let stop_at = (measure_from + args.duration).min(start + args.max_duration);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let limit = args.requests;

    let progress = if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new(if limit > 0 {
            limit
        } else {
            args.duration.as_secs().max(1)
        });
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    };

    let mut tasks = Vec::new();
    for t in 0..args.clients {
        let client = conns[t % conns.len()].clone();
        let (keys, value, done, stop) = (keys.clone(), value.clone(), done.clone(), stop.clone());
        let seed = args
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(t as u64);
        let probe = probe.clone();
        let cas = args.cas.clone();
        let clients = args.clients as u64;
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            // --cas: what this client last saw in each key it touches.
            let mut seen: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>> = Default::default();
            let mut seq = 0u64;
            let put_options = PutOptions {
                ttl: None,
                consistency: Some(consistency),
            };
            let mut tally = Tally::new()?;
            loop {
                let now = Instant::now();
                if stop.load(Ordering::Relaxed) || now >= stop_at {
                    break;
                }
                let mut roll = rng.random_range(0..total_weight);
                let mut op = Op::Put;
                for (o, w) in Op::ALL.iter().zip(mix) {
                    if roll < w {
                        op = *o;
                        break;
                    }
                    roll -= w;
                }
                let key = match cas.as_deref() {
                    Some("hot") => {
                        op = Op::Cas;
                        keys.name(0)
                    }
                    Some(_) => {
                        // This client's own keys: index ≡ t (mod clients).
                        op = Op::Cas;
                        let i = rng.random_range(0..keys.space.div_ceil(clients).max(1));
                        keys.name((i * clients + t as u64).min(keys.space - 1))
                    }
                    None => keys.pick(&mut rng),
                };
                let t0 = Instant::now();
                let result = match op {
                    Op::Put => {
                        let probed = probe.as_ref().map(|p| (p, key.clone()));
                        client
                            .put_with(key, value.as_slice(), put_options)
                            .await
                            .map(|version| {
                                if let Some((p, key)) = probed
                                    && t0 >= measure_from
                                {
                                    p.note(key, version.hlc.as_u64(), true);
                                }
                                true
                            })
                    }
                    Op::Get => client
                        .get_with(key, Some(consistency))
                        .await
                        .map(|e| e.is_some()),
                    Op::Delete => client.delete(key).await.map(|_| true),
                    Op::Cas => {
                        seq += 1;
                        let mut new = format!("{t}-{seq}-").into_bytes();
                        new.resize(value.len().max(new.len()), b'v');
                        let expect = match seen.get(&key).cloned().flatten() {
                            Some(v) => vergent_client::Expect::Value(v),
                            None => vergent_client::Expect::Absent,
                        };
                        match client.compare_and_set(key.clone(), expect, Some(new)).await {
                            Ok(r) => {
                                seen.insert(key, r.value);
                                Ok(r.applied)
                            }
                            Err(e) => {
                                seen.remove(&key);
                                Err(e)
                            }
                        }
                    }
                    Op::ReadModifyWrite => {
                        match client.get_with(key.clone(), Some(consistency)).await {
                            Ok(_) => client
                                .put_with(key, value.as_slice(), put_options)
                                .await
                                .map(|_| true),
                            Err(e) => Err(e),
                        }
                    }
                };
                let micros = t0.elapsed().as_micros().max(1) as u64;
                if t0 < measure_from {
                    continue;
                }
                match result {
                    Ok(found) => {
                        let idx = Op::ALL.iter().position(|o| *o == op).unwrap_or(0);
                        let _ = tally.hist[idx].record(micros.min(60_000_000));
                        if !found {
                            tally.misses += 1;
                        }
                    }
                    Err(e) => *tally.errors.entry(error_kind(&e)).or_default() += 1,
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if limit > 0 && n >= limit {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            anyhow::Ok(tally)
        }));
    }
    // Progress ticker; ends with the run.
    let ticker = {
        let (done, stop, progress) = (done.clone(), stop.clone(), progress.clone());
        tokio::spawn(async move {
            let begin = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let n = done.load(Ordering::Relaxed);
                let secs = begin.elapsed().as_secs_f64().max(1e-3);
                if limit > 0 {
                    progress.set_position(n);
                } else {
                    progress.set_position(begin.elapsed().as_secs());
                }
                progress.set_message(format!("{n} ops, {:.0} ops/s", n as f64 / secs));
                if stop.load(Ordering::Relaxed) || Instant::now() >= stop_at {
                    break;
                }
            }
        })
    };
    let mut total = Tally::new()?;
    for t in tasks {
        total.merge(&t.await.context("join a client task")??)?;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    progress.finish_and_clear();
    let elapsed = (Instant::now().min(stop_at) - measure_from.min(Instant::now()))
        .as_secs_f64()
        .max(1e-6);
    if let Some(probe) = &probe {
        // Let the last replicated puts arrive before counting the unseen.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (lag, unseen) = probe.finish();
        total.lag = Some((lag, unseen));
    }
    report(&args, &total, elapsed);
    Ok(())
}

fn report(args: &BenchArgs, t: &Tally, elapsed: f64) {
    let ops: u64 = t.hist.iter().map(Histogram::len).sum();
    let errors: u64 = t.errors.values().sum();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for h in &t.hist {
        let _ = all.add(h);
    }
    let q = |h: &Histogram<u64>, p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    if args.json {
        let mut per_op = serde_json::Map::new();
        for (op, h) in Op::ALL.iter().zip(&t.hist) {
            if h.is_empty() {
                continue;
            }
            per_op.insert(
                op.name().into(),
                serde_json::json!({
                    "ops": h.len(),
                    "p50_us": q(h, 0.5), "p90_us": q(h, 0.9), "p99_us": q(h, 0.99),
                    "p999_us": q(h, 0.999), "max_us": h.max(),
                }),
            );
        }
        let line = serde_json::json!({
            "target": "vergent",
            "endpoints": args.endpoints,
            "clients": args.clients,
            "connections": args.connections,
            "consistency": args.consistency,
            "value_size": args.value_size,
            "ops": ops,
            "errors": errors,
            "errors_by_kind": t.errors,
            "misses": t.misses,
            "lag": t.lag.as_ref().map(|(h, unseen)| serde_json::json!({
                "samples": h.len(), "unseen": unseen,
                "p50_us": q(h, 0.5), "p99_us": q(h, 0.99), "max_us": h.max(),
            })),
            "elapsed_s": elapsed,
            "throughput_ops_s": ops as f64 / elapsed,
            "p50_us": q(&all, 0.5), "p90_us": q(&all, 0.9), "p99_us": q(&all, 0.99),
            "p999_us": q(&all, 0.999), "max_us": all.max(),
            "by_op": per_op,
        });
        println!("{line}");
        return;
    }
    println!(
        "{ops} ops in {elapsed:.2} s: {:.0} ops/s, {errors} errors, {} misses",
        ops as f64 / elapsed,
        t.misses
    );
    if let Some((h, unseen)) = &t.lag {
        println!(
            "replication lag: {} puts, p50 {} µs, p99 {} µs, max {} µs, {unseen} not seen",
            h.len(),
            q(h, 0.5),
            q(h, 0.99),
            h.max()
        );
    }
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "op", "ops", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    for (op, h) in Op::ALL
        .iter()
        .zip(&t.hist)
        .chain(std::iter::once((&Op::Put, &all)))
    {
        if h.is_empty() {
            continue;
        }
        let name = if std::ptr::eq(h, &all) {
            "all"
        } else {
            op.name()
        };
        println!(
            "{name:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            h.len(),
            q(h, 0.5),
            q(h, 0.9),
            q(h, 0.99),
            q(h, 0.999),
            h.max()
        );
    }
    for (kind, n) in &t.errors {
        println!("error {kind}: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        b: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        let mut v = vec![
            "t",
            "--endpoints",
            "h:1",
            "--tls-certfile",
            "c",
            "--tls-keyfile",
            "k",
            "--tls-cafile",
            "a",
        ];
        v.extend_from_slice(extra);
        T::parse_from(v).b
    }

    #[test]
    fn mixes_and_workloads_parse_to_weights() {
        assert_eq!(parse_mix(&args(&[])).expect("default"), [50, 50, 0, 0]);
        assert_eq!(
            parse_mix(&args(&["--mix", "100:0"])).expect("puts"),
            [100, 0, 0, 0]
        );
        assert_eq!(
            parse_mix(&args(&["--mix", "1:2:3"])).expect("3"),
            [1, 2, 3, 0]
        );
        assert_eq!(
            parse_mix(&args(&["--workload", "F"])).expect("f"),
            [0, 50, 0, 50]
        );
        assert!(parse_mix(&args(&["--mix", "0:0"])).is_err());
        assert!(parse_mix(&args(&["--mix", "x"])).is_err());
        assert!(parse_mix(&args(&["--workload", "z"])).is_err());
    }

    #[test]
    fn keys_have_the_requested_size_and_stay_in_the_key_space() {
        let mut rng = StdRng::seed_from_u64(1);
        for zipf in [None, Some(Zipf::new(10.0, 0.99).expect("zipf"))] {
            let keys = Keys {
                space: 10,
                size: 16,
                zipf,
            };
            for _ in 0..1000 {
                let k = keys.pick(&mut rng);
                assert_eq!(k.len(), 16);
                let i: u64 = std::str::from_utf8(&k[1..])
                    .expect("utf8")
                    .parse()
                    .expect("index");
                assert!(i < 10);
            }
        }
    }
}

/// A client that never retries: each request is measured as it went, and
/// an error counts as one.
fn measured(mut config: ClientConfig) -> ClientConfig {
    config.retry = vergent_client::RetryConfig::never();
    config
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    #[test]
    fn the_lag_probe_pairs_acks_with_events_in_either_order_and_counts_the_unseen() {
        let probe = LagProbe::new().expect("probe");
        probe.note(b"a".to_vec(), 1, true);
        probe.note(b"a".to_vec(), 1, false);
        // The event may overtake the acknowledgement: lag 0, still a sample.
        probe.note(b"b".to_vec(), 2, false);
        probe.note(b"b".to_vec(), 2, true);
        // Same key, another version: a different write.
        probe.note(b"a".to_vec(), 3, true);
        let (hist, unseen) = probe.finish();
        assert_eq!(hist.len(), 2);
        assert_eq!(unseen, 1);
    }
}
