//! `vergent-chaos`: runs a real Vergent cluster under a seeded nemesis with a
//! recording workload, heals, waits for convergence and checks the history.
//! Started by `cargo xtask chaos`, which builds it and provides the network
//! namespace; see docs/testing.md.
//!
//! Exit codes: 0 every check passed, 1 a checker found a violation, 2 the run
//! itself could not be carried out, 130 interrupted.

mod cluster;
mod nemesis;
mod net;
mod report;
mod strong;
mod workload;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vergent_chaos::check::{self, ClockReading, Violation};
use vergent_chaos::history::{self, Record, ReplicaState, Stamp};
use vergent_chaos::schedule::{self, FaultKind};
use vergent_client::Client;

use crate::cluster::Cluster;
use crate::nemesis::{Nemesis, millis};
use crate::report::Report;
use crate::workload::{Recorder, Shape};

/// Which operations the clients run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Consistency `one` puts, gets and deletes; checked for lost writes,
    /// resurrection, convergence, monotonic reads and clock poisoning.
    Eventual,
    /// SERIAL reads, strong puts and deletes and compare-and-sets; checked
    /// for linearizability per key, and the converged state against a final
    /// SERIAL read.
    Strong,
    /// Puts, gets and deletes at `quorum` (one in ten at `all`); checked as
    /// `eventual` is, and every level read against the level writes
    /// acknowledged before it and the level reads answered before it.
    Quorum,
    /// The strong workload's operations with a third of them turned into
    /// eventual puts and deletes at `one`, `quorum` and `all` on the same
    /// keys; checked against the mixing contract: linearizable with every
    /// eventual write free to apply after its invocation or never, and every
    /// write acknowledged at `quorum`/`all` observed by the strong operations
    /// that start after it.
    Mixed,
}

impl Workload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Eventual => "eventual",
            Self::Strong => "strong",
            Self::Quorum => "quorum",
            Self::Mixed => "mixed",
        }
    }
}

/// Run a Vergent cluster under faults and check what it kept.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub(crate) struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// How long the workload and the nemesis run (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the schedule and the workload; printed so a run can be replayed.
    #[arg(long)]
    seed: Option<u64>,
    /// Faults to inject: comma-separated from kill, pause, partition, loss,
    /// delay, skew, faketime, disk; or all.
    #[arg(long, default_value = "all")]
    faults: String,
    /// What the clients do.
    #[arg(long, value_enum, default_value_t = Workload::Eventual)]
    workload: Workload,
    /// Concurrent clients (default: two per node; 10 for the strong workload).
    #[arg(long)]
    clients: Option<u32>,
    /// Size of the key space (default: 40; 5 hot keys for the strong workload).
    #[arg(long)]
    keys: Option<u32>,
    /// Operations per second per client (default: 40; 10 for the strong workload).
    #[arg(long)]
    rate: Option<u32>,
    /// Testing the checker: start the nodes with a broken consensus core
    /// that counts one node as a quorum. The run must then FAIL.
    #[arg(long)]
    unsafe_quorum_of_one: bool,
    /// Testing the level checks: start the nodes with a broken tracker that
    /// acknowledges `quorum`/`all` writes once the coordinator alone holds
    /// them. A quorum or mixed run must then FAIL.
    #[arg(long)]
    unsafe_levels_of_one: bool,
    /// Time allowed for replicas to converge after healing.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    converge_timeout: Duration,
    /// The nodes' --max-clock-offset.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    max_clock_offset: Duration,
    /// The nodes' --tombstone-grace (default: theirs, 24 h). A short grace
    /// (e.g. 20s) makes purges, and log replays to wiped nodes across them,
    /// happen during the run, where the resurrection checker sees them.
    #[arg(long, value_parser = humantime::parse_duration)]
    tombstone_grace: Option<Duration>,
    /// The vergentd binary.
    #[arg(long)]
    vergentd: PathBuf,
    /// Where the report, history, logs and data go.
    #[arg(long)]
    out: PathBuf,
    /// The network namespace this runs in, created for the run (packet faults
    /// are only injected inside one).
    #[arg(long)]
    netns: Option<String>,
    /// Keep the data dirs even when the run passes.
    #[arg(long)]
    keep_data: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VERGENT_CHAOS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vergent-chaos: failed to start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let history = Recorder::default();
    let strong_history = strong::StrongRecorder::new();
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(&args, history.clone(), strong_history.clone()) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    // Dropping the run killed every node (kill_on_drop); the namespace itself
    // is removed by whoever created it, but drop our name for it too.
    let code = match outcome {
        Some(Ok(true)) => ExitCode::SUCCESS,
        Some(Ok(false)) => ExitCode::from(1),
        Some(Err(e)) => {
            eprintln!("vergent-chaos: failed to {e:#}");
            let _ = write_history(&args, &history.snapshot());
            let _ = write_strong_history(&args, &strong_history.snapshot());
            ExitCode::from(2)
        }
        None => {
            eprintln!(
                "vergent-chaos: interrupted; partial history in {}",
                args.out.display()
            );
            let _ = write_history(&args, &history.snapshot());
            let _ = write_strong_history(&args, &strong_history.snapshot());
            // The namespace lives on while anything runs in it; dropping its
            // name now spares the next run the clean-up.
            if let Some(name) = &args.netns {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", name])
                    .status();
            }
            ExitCode::from(130)
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

impl Args {
    /// Clients in the workload.
    pub(crate) fn clients(&self) -> u32 {
        self.clients.unwrap_or(match self.workload {
            Workload::Eventual | Workload::Quorum => {
                u32::try_from(self.nodes * 2).unwrap_or(u32::MAX)
            }
            Workload::Strong | Workload::Mixed => 10,
        })
    }

    /// Keys in the workload.
    pub(crate) fn keys(&self) -> u32 {
        self.keys.unwrap_or(match self.workload {
            Workload::Eventual => 40,
            Workload::Strong | Workload::Mixed => 5,
            // Few keys, so reads race the writes they must see.
            Workload::Quorum => 10,
        })
    }

    /// Operations per second per client.
    pub(crate) fn rate(&self) -> u32 {
        self.rate.unwrap_or(match self.workload {
            Workload::Eventual => 40,
            Workload::Strong | Workload::Quorum | Workload::Mixed => 10,
        })
    }
}

fn write_strong_history(
    args: &Args,
    events: &[vergent_chaos::strong::StrongEvent],
) -> anyhow::Result<PathBuf> {
    let path = args.out.join("strong-history.jsonl");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?,
    );
    for e in events {
        serde_json::to_writer(&mut f, e).context("write the strong history")?;
        std::io::Write::write_all(&mut f, b"\n").context("write the strong history")?;
    }
    std::io::Write::flush(&mut f).context("write the strong history")?;
    Ok(path)
}

fn write_history(args: &Args, events: &[history::Event]) -> anyhow::Result<PathBuf> {
    let path = args.out.join("history.jsonl");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?,
    );
    history::write_jsonl(events, &mut f).context("write the history")?;
    std::io::Write::flush(&mut f).context("write the history")?;
    Ok(path)
}

/// Where to find libfaketime on Debian.
fn faketime_lib() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn on_path(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The faults this machine can inject, and why the others are skipped.
fn usable_faults(args: &Args) -> anyhow::Result<(Vec<FaultKind>, Vec<String>)> {
    let wanted = schedule::parse_kinds(&args.faults).map_err(anyhow::Error::msg)?;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for kind in wanted {
        let why = if kind.needs_netns() && args.netns.is_none() {
            Some(
                "needs a network namespace of the run's own (run `cargo xtask chaos` as root); the host firewall is never touched",
            )
        } else if kind.needs_netns() && !on_path("nft") {
            Some("nft (nftables) is not installed")
        } else if kind == FaultKind::Faketime && faketime_lib().is_none() {
            Some("libfaketime is not installed (Debian package faketime)")
        } else if kind == FaultKind::Disk && !on_path("strace") {
            Some("strace is not installed")
        } else {
            None
        };
        match why {
            Some(why) => skipped.push(format!("{kind}: {why}")),
            None => usable.push(kind),
        }
    }
    Ok((usable, skipped))
}

async fn run(
    args: &Args,
    history: Recorder,
    strong_history: strong::StrongRecorder,
) -> anyhow::Result<bool> {
    vergent_tls::install_default_provider();
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let seed = args
        .seed
        .unwrap_or_else(|| workload::wall_ms() ^ u64::from(std::process::id()));
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let (kinds, skipped) = usable_faults(args)?;
    for s in &skipped {
        eprintln!("vergent-chaos: skipping {s}");
    }
    let max_offset_ms = millis(args.max_clock_offset);
    let steps = schedule::plan(seed, args.nodes, args.duration, &kinds, max_offset_ms);
    eprintln!(
        "vergent-chaos: seed {seed}, {} workload, {} nodes, {:?}, faults {}; {} scheduled; output in {}",
        args.workload.name(),
        args.nodes,
        args.duration,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
        steps.len(),
        args.out.display()
    );
    std::fs::write(
        args.out.join("schedule.json"),
        serde_json::to_vec_pretty(&steps).context("encode the schedule")?,
    )
    .context("write the schedule")?;

    // Every node gets a delay proxy in front when delay faults are on, so
    // the topology does not change mid-run.
    let with_proxies = kinds.contains(&FaultKind::Delay);
    let node_ports = vergent_testkit::free_ports(args.nodes);
    let mut proxies = Vec::new();
    let mut advertise: Vec<SocketAddr> = node_ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    if with_proxies {
        for (i, target) in advertise.iter_mut().enumerate() {
            let p = vergent_chaos::proxy::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                *target,
                seed.wrapping_add(i as u64),
            )
            .await
            .context("start a delay proxy")?;
            *target = p.front_addr();
            proxies.push(p);
        }
    }
    let proxy_ports: Vec<u16> = advertise.iter().map(SocketAddr::port).collect();
    let firewall = args
        .netns
        .as_ref()
        .map(|_| net::Firewall::new(&node_ports, with_proxies.then_some(proxy_ports.as_slice())));

    let mut cluster = Cluster::new(
        &args.out,
        args.vergentd.clone(),
        &node_ports,
        &advertise,
        args.max_clock_offset,
        faketime_lib(),
        args.tombstone_grace,
        args.unsafe_quorum_of_one,
        args.unsafe_levels_of_one,
    )?;
    for i in 0..args.nodes {
        cluster.start(i)?;
    }
    let ready_by = std::time::Instant::now() + Duration::from_secs(60);
    // Strong operations get past the node's own 5 s deadline, so clients
    // hear its honest answer (applied, refused or unknown) instead of timing out.
    let op_timeout = match args.workload {
        Workload::Eventual => Duration::from_secs(2),
        Workload::Strong | Workload::Quorum | Workload::Mixed => Duration::from_secs(8),
    };
    let mut clients = Vec::new();
    for i in 0..args.nodes {
        clients.push(cluster.connect(i, op_timeout, ready_by).await?);
    }
    eprintln!("vergent-chaos: cluster up; workload and nemesis running");

    let stop = CancellationToken::new();
    let shape = Shape {
        keys: args.keys(),
        rate: args.rate(),
        level: (args.workload == Workload::Quorum).then_some(history::Level::Quorum),
    };
    let n_clients = args.clients();
    let gates: Vec<workload::Gate> = (0..args.nodes).map(|_| workload::Gate::default()).collect();
    let mut tasks = Vec::new();
    for p in 0..n_clients {
        let node = p as usize % args.nodes;
        let (id, c, gate) = (
            cluster.nodes[node].id.clone(),
            clients[node].clone(),
            gates[node].clone(),
        );
        tasks.push(match args.workload {
            Workload::Eventual | Workload::Quorum => tokio::spawn(workload::client(
                p,
                id,
                c,
                gate,
                shape,
                seed,
                history.clone(),
                stop.clone(),
            )),
            Workload::Strong | Workload::Mixed => tokio::spawn(strong::client(
                p,
                id,
                c,
                gate,
                shape.keys,
                shape.rate,
                seed,
                args.workload == Workload::Mixed,
                strong_history.clone(),
                stop.clone(),
            )),
        });
    }
    let start = Instant::now();
    let drain_wipes = args.workload != Workload::Quorum;
    let mut nemesis = Nemesis::new(cluster, firewall, proxies, gates, drain_wipes);
    let stop_at = start + args.duration;
    let nemesis_stop = CancellationToken::new();
    {
        let nemesis_stop = nemesis_stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(stop_at).await;
            nemesis_stop.cancel();
        });
    }
    let ran = nemesis.run(&steps, start, &nemesis_stop).await;
    tokio::time::sleep_until(stop_at).await;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    ran?;
    let workload_time = start.elapsed();
    nemesis.heal_all(start).await?;
    eprintln!("vergent-chaos: healed; waiting for convergence");

    // Fresh clients: nodes were restarted.
    let settle_from = Instant::now();
    let deadline = std::time::Instant::now() + args.converge_timeout;
    let mut final_clients = Vec::new();
    for i in 0..args.nodes {
        // A node that stops itself right after its fault was healed (a
        // fail-stop on an fsync that failed just before) is brought back too.
        for name in nemesis.revive(start)? {
            eprintln!("vergent-chaos: {name} was down after healing; restarted");
        }
        final_clients.push(
            nemesis
                .cluster
                .connect(i, Duration::from_secs(5), deadline)
                .await?,
        );
    }
    let ids: Vec<String> = nemesis.cluster.nodes.iter().map(|n| n.id.clone()).collect();
    // Before convergence: a proposal accepted but never committed reaches
    // the LWW store only when a strong operation on its key decides it.
    let final_reads = match args.workload {
        Workload::Eventual | Workload::Quorum => None,
        Workload::Strong | Workload::Mixed => Some(
            strong::final_reads(
                &final_clients[0],
                &ids[0],
                shape.keys,
                n_clients,
                &strong_history,
                deadline,
            )
            .await?,
        ),
    };
    let mut revive = || match nemesis.revive(start) {
        Ok(started) if !started.is_empty() => {
            eprintln!(
                "vergent-chaos: {} was down after healing; restarted",
                started.join(", ")
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!("vergent-chaos: failed to restart a node: {e:#}"),
    };
    let mut converge = wait_converged(&ids, &final_clients, deadline, &mut revive).await;
    // An `ONE` write still on its way when the first final reads ran may
    // win by last-writer-wins afterwards, as the contract allows; the mixed
    // workload compares the converged state with reads taken after it. Those
    // reads may themselves decide a proposal still pending at a minority
    // (one the first reads' quorums did not include), and its commit then
    // spreads: the replicas are compared once they converged again.
    let final_reads = match (args.workload, final_reads, &converge) {
        (Workload::Mixed, Some(_), Ok(_)) => {
            let reads = strong::final_reads(
                &final_clients[0],
                &ids[0],
                shape.keys,
                n_clients + 1,
                &strong_history,
                deadline,
            )
            .await?;
            converge = wait_converged(&ids, &final_clients, deadline, &mut revive).await;
            Some(reads)
        }
        (_, reads, _) => reads,
    };
    let converge_time = settle_from.elapsed();
    let mut readings = Vec::new();
    for (id, c) in ids.iter().zip(&final_clients) {
        if let Ok(s) = c.status().await {
            readings.push(ClockReading {
                node: id.clone(),
                hlc: s.hlc_now.as_u64(),
                wall_ms: workload::wall_ms(),
            });
        }
    }
    nemesis.cluster.shutdown().await;
    let anti_entropy = nemesis.cluster.anti_entropy();

    let events = history.snapshot();
    let history_path = write_history(args, &events)?;
    let (final_state, mut violations, states) = match converge {
        Ok((state, states)) => (state, Vec::new(), states),
        Err((violations, states)) => {
            // Check the other properties against the first replica anyway.
            let first = states.values().next().cloned().unwrap_or_default();
            (first, violations, states)
        }
    };
    std::fs::write(
        args.out.join("final-state.json"),
        serde_json::to_vec_pretty(&states).context("encode the final state")?,
    )
    .context("write the final state")?;
    // The eventual checkers judge the eventual workload's keys only; the
    // strong keys are judged by the strong checks below.
    let eventual_state: ReplicaState = final_state
        .iter()
        .filter(|(k, _)| !strong::is_strong_key(k))
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect();
    violations.extend(check::lost_writes(&events, &eventual_state));
    violations.extend(check::resurrection(&events, &eventual_state));
    violations.extend(check::unwritten_values(&events, &eventual_state));
    violations.extend(check::node_monotonic(&events));
    violations.extend(check::level_reads(&events));
    violations.extend(check::clock_poisoning(
        &events,
        &readings,
        &nemesis.skew_windows,
        max_offset_ms,
        250,
    ));
    let strong_events = strong_history.snapshot();
    let strong_path = match args.workload {
        Workload::Eventual | Workload::Quorum => None,
        Workload::Strong | Workload::Mixed => Some(write_strong_history(args, &strong_events)?),
    };
    if let Some(reads) = &final_reads {
        let options = vergent_lincheck::CheckOptions {
            max_steps: Some(vergent_chaos::strong::MAX_STEPS),
        };
        let checked = std::time::Instant::now();
        violations.extend(vergent_chaos::strong::linearizable(
            &strong_events,
            &options,
        ));
        eprintln!(
            "vergent-chaos: linearizability checked in {:.1} s",
            checked.elapsed().as_secs_f64()
        );
        violations.extend(vergent_chaos::strong::level_writes_observed(&strong_events));
        violations.extend(vergent_chaos::strong::final_agrees(reads, &final_state));
    }
    let report = Report {
        seed,
        args,
        kinds: &kinds,
        skipped: &skipped,
        events: &events,
        applied: &nemesis.applied,
        self_exits: &nemesis.self_exits,
        proxy_totals: nemesis.proxy_totals(),
        skew_windows: &nemesis.skew_windows,
        workload_time,
        converge_time,
        converged: violations
            .iter()
            .all(|v| v.checker != check::Checker::Convergence),
        final_keys: final_state.len(),
        violations: &violations,
        history_path: &history_path,
        strong_events: &strong_events,
        strong_path: strong_path.as_deref(),
        anti_entropy,
    };
    let text = report.render();
    std::fs::write(args.out.join("report.md"), &text).context("write the report")?;
    println!("{text}");
    let pass = report.pass();
    if pass
        && !args.keep_data
        && let Some(data) = nemesis.cluster.data_root()
    {
        let _ = std::fs::remove_dir_all(data);
    }
    Ok(pass)
}

type States = BTreeMap<String, ReplicaState>;

/// Polls every replica's full state until all agree or `deadline`,
/// calling `revive` before each round (nodes that went down are restarted).
async fn wait_converged(
    ids: &[String],
    clients: &[Client],
    deadline: std::time::Instant,
    mut revive: impl FnMut(),
) -> Result<(ReplicaState, States), (Vec<Violation>, States)> {
    loop {
        revive();
        let mut states = States::new();
        let mut unreachable = Vec::new();
        for (id, c) in ids.iter().zip(clients) {
            match c.scan_all_records("").await {
                Ok(records) => {
                    let state = records
                        .into_iter()
                        .map(|r| {
                            (
                                String::from_utf8_lossy(&r.key).into_owned(),
                                Record {
                                    value: r
                                        .value
                                        .map(|v| String::from_utf8_lossy(&v).into_owned()),
                                    version: Stamp {
                                        hlc: r.version.hlc.as_u64(),
                                        origin: r.version.origin.to_string(),
                                    },
                                },
                            )
                        })
                        .collect();
                    states.insert(id.clone(), state);
                }
                Err(e) => unreachable.push(Violation {
                    checker: check::Checker::Convergence,
                    key: None,
                    detail: format!("{id} did not answer a scan: {e}"),
                }),
            }
        }
        let differences = if unreachable.is_empty() {
            match check::converged(&states) {
                Ok(state) => return Ok((state, states)),
                Err(v) => v,
            }
        } else {
            unreachable
        };
        if std::time::Instant::now() >= deadline {
            return Err((differences, states));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
