//! `nodus`: the appliance daemon and its command-line tools.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use clap::{Parser, Subcommand};
use nodus::{
    board::Topology,
    cachesim as sim,
    config::{self, Config, LogConfig, LogTarget},
    control::{self, protocol::Request, protocol::StatusReport},
    daemon::{self, Notifier, RunOptions},
    ebpf::error_chain,
    fleet::watch::{self, WatchOptions},
    fleet::{config::MqttVersion, document},
    logging, pagecache,
    privileges::{self, Capability},
    probe::{self, ProbeReport},
    proccache::{self, PsReport, procfs},
    profile, supervisor, top,
};

/// Exit code for an invalid configuration or command line.
const EXIT_CONFIG: u8 = 2;
/// Exit code when the process lacks a capability it needs (sysexits EX_NOPERM).
const EXIT_NOPERM: u8 = 77;

#[derive(Parser)]
#[command(
    name = "nodus",
    version,
    about = "Appliance daemon for ARMv9 NUMA boards: board profiles, eBPF components, fleet telemetry over MQTT."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (as a systemd Type=notify service).
    Run {
        /// Config file [default: /etc/nodus/nodus.toml if present, else the embedded defaults]
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Report which eBPF features this kernel gives nodus, by loading tiny programs.
    Probe {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the running daemon's state and each component's health and stats.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Describe every stat each component can report, without asking the
        /// daemon (with --markdown: the tables of docs/stats.md).
        #[arg(long)]
        describe: bool,
        /// With --describe: Markdown tables.
        #[arg(long, requires = "describe")]
        markdown: bool,
        /// Control socket [default: control.socket from the config in use]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// A live view of the nodes (CPU and memory bars), the profile and the
    /// scheduler's layers, and the processes with their workload class,
    /// where their pages are and how often they moved (q quits, s sorts).
    Top {
        /// Print one frame as text and exit (no terminal needed).
        #[arg(long)]
        once: bool,
        /// Print what one frame shows as JSON and exit.
        #[arg(long)]
        json: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Process column sorted on, largest first: memory, cpu, remote
        /// (pages away from home) or migrations (across nodes).
        #[arg(long, default_value = "memory", value_parser = parse_sort)]
        sort: top::SortBy,
        /// Control socket [default: control.socket from the config in use]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// List the processes the running daemon's process cache holds.
    Ps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Include exited processes still retained (see [proccache] retain_*).
        #[arg(long)]
        exited: bool,
        /// Show children under their parents.
        #[arg(long)]
        tree: bool,
        /// Only this pid (with --exited, every process that held it).
        #[arg(long)]
        pid: Option<u32>,
        /// Only command names starting with this.
        #[arg(long, value_name = "PREFIX")]
        comm: Option<String>,
        /// Control socket [default: control.socket from the config in use]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Board profiles and the topology they are checked against.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Configuration files and signed fleet config documents.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Fleet telemetry.
    Telemetry {
        #[command(subcommand)]
        command: TelemetryCommand,
    },
    /// Page-cache insight: what is cached, what hits and misses, what another policy would do.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Check that this build keeps a panicking component from stopping the
    /// others (a build with panic=abort dies here instead; run it on the
    /// binary a firmware image ships).
    Selftest,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// How much of each file is in the page cache (directories recursively),
    /// with totals: cached, dirty, writeback and evicted pages (cachestat;
    /// mincore where the kernel lacks or refuses it), in the kernel's pages.
    Files {
        /// Files and directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The files with the most pages cached among those this board uses:
    /// the file server's docroot, files mapped or held open by any process,
    /// and paths given with --path.
    Top {
        /// How many files to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// A further file or directory to consider (repeatable).
        #[arg(long = "path")]
        paths: Vec<PathBuf>,
        /// Config whose [fileserver] docroot to consider [default: as `nodus run`]
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Pages accessed, missed and hit in the page cache over a few seconds,
    /// per file, process and cgroup: counted with fentry where the kernel
    /// allows it, else from its filemap tracepoints (hits then estimated as
    /// accesses less misses, and marked so).
    Hits {
        /// Seconds to count.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Rows per table.
        #[arg(short = 'n', long, default_value_t = 10)]
        limit: usize,
        /// A further file or directory to look for names in (repeatable).
        #[arg(long = "path")]
        paths: Vec<PathBuf>,
        /// Config whose [fileserver] docroot to look for names in [default: as `nodus run`]
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Page-cache misses as they happen (time, pid, comm, file, offset),
    /// until Ctrl-C; optionally every access saved as a trace for
    /// `nodus cache simulate`.
    Trace {
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        /// Only this process's misses.
        #[arg(long)]
        pid: Option<u32>,
        /// Save every page accessed as an oracleGeneral trace (one request
        /// per page) to this file.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// A file or directory to look for names in, for files the missing
        /// process does not hold open (repeatable).
        #[arg(long = "path")]
        paths: Vec<PathBuf>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replay an access trace through LRU, ARC, S3-FIFO and SIEVE caches of
    /// several sizes: the miss-ratio curve of each (libCacheSim's rules and
    /// trace formats; every object counts one unless --weighted).
    Simulate {
        /// The trace file.
        trace: PathBuf,
        /// Trace format: oracle-general (libCacheSim's binary) or csv.
        #[arg(long, default_value = "oracle-general")]
        format: String,
        /// csv: 1-based column of the object id.
        #[arg(long, default_value_t = 2)]
        id_column: usize,
        /// csv: 1-based column of the object size (0: none; size-0 requests are skipped).
        #[arg(long, default_value_t = 0)]
        size_column: usize,
        /// csv: field delimiter.
        #[arg(long, default_value = ",")]
        delimiter: char,
        /// Policies, comma-separated [default: lru,arc,s3fifo,sieve]
        #[arg(long, value_delimiter = ',')]
        policies: Vec<String>,
        /// Cache sizes in objects (or, --weighted, in the trace's size unit),
        /// comma-separated [default: 1%, 2%, 5%, 10%, 20% and 50% of the
        /// distinct objects in the trace, or of their total size]
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<u64>,
        /// Weigh each object by its size in the trace (a cache of files or
        /// web objects, sized in bytes) instead of counting it one.
        #[arg(long)]
        weighted: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TelemetryCommand {
    /// Decode and print live telemetry from the broker (a table, or JSON lines).
    Watch {
        /// Broker URL, mqtt://host[:port] or mqtts://host[:port].
        #[arg(long)]
        broker: String,
        /// Only this board [default: every board on the broker]
        #[arg(long)]
        device: Option<String>,
        /// One JSON object per report instead of a table.
        #[arg(long)]
        json: bool,
        /// Exit after this many reports.
        #[arg(long)]
        count: Option<u64>,
        /// With --count: fail if they have not arrived within this many seconds.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// MQTT protocol version: 5 or 3.1.1.
        #[arg(long, default_value = "5")]
        mqtt_version: String,
        /// CA bundle (PEM) for mqtts://.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Client certificate (PEM), for brokers that require one (with --client-key).
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// Private key (PEM) of --client-cert.
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// MQTT user name.
        #[arg(long)]
        username: Option<String>,
        /// File holding the MQTT password (with --username).
        #[arg(long, requires = "username")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Print the detected topology and the profile that matches it.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Config whose [profile] section to use [default: as `nodus run`]
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate profiles: structure and internal consistency (exit 2 if any is bad).
    Check {
        /// Profile files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file as `nodus run` would, without running anything.
    Check {
        /// The file to check.
        path: PathBuf,
    },
    /// Print the embedded default configuration (every key, documented).
    Defaults,
    /// Sign a fleet config document with an Ed25519 key (PKCS#8 PEM, as
    /// `openssl genpkey -algorithm ed25519` writes); prints the signed document.
    Sign {
        /// The private key.
        #[arg(long)]
        key: PathBuf,
        /// The document (TOML with `version` and `target`).
        file: PathBuf,
    },
    /// Print the base64 public key for fleet.trusted_keys, from a private or public key PEM.
    PublicKey {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
    },
}

fn main() -> ExitCode {
    let started = Instant::now();
    nodus::ebpf::fix_mmap_threshold();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        // A command's output piped into `head` or `grep -q` ends the
        // command quietly, as for any Unix tool, instead of a panic about a
        // broken pipe (Rust ignores SIGPIPE by default). The daemon keeps
        // ignoring it: a client hanging up must never kill it.
        // SAFETY: restoring the default disposition of one signal, before
        // this process has started a thread; no handler is installed.
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        };
    }
    match cli.command {
        Command::Run { config } => run(config.as_deref(), started),
        Command::Probe { json } => probe_cmd(json),
        Command::Status {
            describe: true,
            markdown,
            json,
            ..
        } => describe_stats(json, markdown),
        Command::Status { json, socket, .. } => status(json, socket),
        Command::Top {
            once,
            json,
            interval,
            sort,
            socket,
        } => run_top(once, json, interval, sort, socket),
        Command::Ps {
            json,
            exited,
            tree,
            pid,
            comm,
            socket,
        } => ps(json, tree, Request::Ps { exited, pid, comm }, socket),
        Command::Profile { command } => match command {
            ProfileCommand::Show { json, config } => profile_show(json, config.as_deref()),
            ProfileCommand::Check { paths } => profile_check(&paths),
        },
        Command::Config { command } => match command {
            ConfigCommand::Check { path } => match Config::load(&path) {
                Ok(_) => {
                    println!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_CONFIG, e),
            },
            ConfigCommand::Defaults => {
                print!("{}", config::EMBEDDED_DEFAULTS);
                ExitCode::SUCCESS
            }
            ConfigCommand::Sign { key, file } => config_sign(&key, &file),
            ConfigCommand::PublicKey { key } => config_public_key(&key),
        },
        Command::Cache { command } => match command {
            CacheCommand::Files { paths, json } => cache_files(&paths, json),
            CacheCommand::Top {
                limit,
                paths,
                config,
                json,
            } => cache_top(limit, &paths, config.as_deref(), json),
            CacheCommand::Hits {
                seconds,
                limit,
                paths,
                config,
                json,
            } => cache_hits(seconds, limit, &paths, config.as_deref(), json),
            CacheCommand::Trace {
                seconds,
                pid,
                record,
                paths,
                json,
            } => cache_trace(seconds, pid, record, paths, json),
            CacheCommand::Simulate {
                trace,
                format,
                id_column,
                size_column,
                delimiter,
                policies,
                sizes,
                weighted,
                json,
            } => {
                let format = match format.as_str() {
                    "oracle-general" | "oracleGeneral" => sim::trace::Format::OracleGeneral,
                    "csv" if id_column >= 1 && delimiter.is_ascii() => sim::trace::Format::Csv {
                        id_column,
                        size_column,
                        delimiter: delimiter as u8,
                    },
                    "csv" => {
                        return fail(
                            EXIT_CONFIG,
                            "--id-column counts from 1 and --delimiter must be one ASCII character",
                        );
                    }
                    other => {
                        return fail(
                            EXIT_CONFIG,
                            format!("--format {other}: expected oracle-general or csv"),
                        );
                    }
                };
                let mut kinds = vec![];
                for name in &policies {
                    match sim::Kind::parse(name) {
                        Some(k) => kinds.push(k),
                        None => {
                            return fail(
                                EXIT_CONFIG,
                                format!("--policies {name}: expected lru, arc, s3fifo or sieve"),
                            );
                        }
                    }
                }
                cache_simulate(&trace, format, &kinds, &sizes, weighted, json)
            }
        },
        Command::Selftest => match nodus::supervisor::selftest::panic_containment() {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, e),
        },
        Command::Telemetry { command } => match command {
            TelemetryCommand::Watch {
                broker,
                device,
                json,
                count,
                timeout,
                mqtt_version,
                ca_file,
                client_cert,
                client_key,
                username,
                password_file,
            } => {
                let version = match mqtt_version.as_str() {
                    "5" => MqttVersion::V5,
                    "3.1.1" => MqttVersion::V311,
                    other => {
                        return fail(
                            EXIT_CONFIG,
                            format!("--mqtt-version {other}: expected 5 or 3.1.1"),
                        );
                    }
                };
                let password = match password_file.as_deref().map(std::fs::read_to_string) {
                    None => String::new(),
                    Some(Ok(p)) => p.trim_end_matches(['\r', '\n']).to_owned(),
                    Some(Err(e)) => return fail(EXIT_CONFIG, format!("--password-file: {e}")),
                };
                telemetry_watch(WatchOptions {
                    broker,
                    device,
                    version,
                    ca_file,
                    client: client_cert.zip(client_key),
                    credentials: username.map(|u| (u, password)),
                    json,
                    count,
                    timeout: timeout.map(std::time::Duration::from_secs),
                })
            }
        },
    }
}

/// Exit 0 when every path was measured, 1 when some could not be (they are
/// listed; the rest is still reported).
fn cache_files(paths: &[PathBuf], json: bool) -> ExitCode {
    let scan = pagecache::scan(paths);
    if json {
        if let Err(code) = print_json(&scan) {
            return code;
        }
    } else {
        print!("{}", pagecache::render::table(&scan));
    }
    if scan.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The file server's docroot, where the cache commands look for files.
fn docroot_of(config: Option<&Path>) -> Result<Option<PathBuf>, ExitCode> {
    let config = Config::resolve(config).map_err(|e| fail(EXIT_CONFIG, e))?.0;
    Ok(config
        .fileserver
        .enabled
        .then_some(config.fileserver.docroot))
}

fn seconds_arg(flag: &str, s: f64) -> Result<std::time::Duration, ExitCode> {
    std::time::Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            fail(
                EXIT_CONFIG,
                format!("{flag} {s}: expected a positive number"),
            )
        })
}

fn cache_hits(
    seconds: f64,
    limit: usize,
    paths: &[PathBuf],
    config: Option<&Path>,
    json: bool,
) -> ExitCode {
    let window = match seconds_arg("--seconds", seconds) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let docroot = match docroot_of(config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let counting = || eprintln!("nodus: counting for {:.1} s", window.as_secs_f64());
    let hits = match pagecache::live::hits(window, limit, docroot.as_deref(), paths, counting) {
        Ok(h) => h,
        Err(e) => return fail(1, error_chain(&e)),
    };
    if json {
        if let Err(code) = print_json(&hits) {
            return code;
        }
    } else {
        print!("{}", pagecache::render::hits(&hits));
    }
    ExitCode::SUCCESS
}

fn cache_trace(
    seconds: Option<f64>,
    pid: Option<u32>,
    record: Option<PathBuf>,
    named: Vec<PathBuf>,
    json: bool,
) -> ExitCode {
    let duration = match seconds.map(|s| seconds_arg("--seconds", s)).transpose() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = pagecache::live::TraceOptions {
        duration,
        pid,
        record,
        named,
        json,
    };
    let tracing = || eprintln!("nodus: tracing page-cache misses (Ctrl-C stops)");
    match pagecache::live::trace(&opts, &mut std::io::stdout().lock(), tracing) {
        Ok(s) => {
            eprintln!(
                "nodus: {} misses shown, {} accesses recorded, {} events lost to a full ring buffer",
                s.misses, s.recorded, s.dropped
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, error_chain(&e)),
    }
}

fn cache_top(limit: usize, paths: &[PathBuf], config: Option<&Path>, json: bool) -> ExitCode {
    let docroot = match docroot_of(config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let top = pagecache::top::top(docroot.as_deref(), paths, limit);
    if json {
        if let Err(code) = print_json(&top) {
            return code;
        }
    } else {
        print!("{}", pagecache::render::top(&top));
    }
    ExitCode::SUCCESS
}

/// The share of a trace's distinct objects the default sizes cover.
const SIMULATE_DEFAULT_FRACTIONS: [f64; 6] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

fn cache_simulate(
    path: &Path,
    format: sim::trace::Format,
    kinds: &[sim::Kind],
    sizes: &[u64],
    weighted: bool,
    json: bool,
) -> ExitCode {
    let trace = match sim::trace::read(path, format) {
        Ok(t) => t,
        Err(e) => return fail(1, e),
    };
    let (unique, unique_bytes) = trace.unique();
    let sizes: Vec<u64> = if sizes.is_empty() {
        let whole = if weighted {
            unique_bytes
        } else {
            unique as u64
        };
        let mut s: Vec<u64> = SIMULATE_DEFAULT_FRACTIONS
            .iter()
            .map(|f| ((whole as f64 * f) as u64).max(1))
            .collect();
        s.dedup();
        s
    } else {
        sizes.to_vec()
    };
    let kinds = if kinds.is_empty() {
        &sim::Kind::ALL[..]
    } else {
        kinds
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let weights = weighted.then_some(&trace.sizes[..]);
    let points = sim::curve(kinds, &sizes, &trace.ids, weights, threads);
    if json {
        let doc = serde_json::json!({
            "requests": trace.ids.len(),
            "unique_objects": unique,
            "unique_bytes": unique_bytes,
            "weighted": weighted,
            "skipped_size_zero": trace.skipped,
            "unparsable_ids": trace.unparsable_ids,
            "points": points,
        });
        println!("{doc:#}");
    } else {
        print!(
            "{}",
            pagecache::render::curve(&points, trace.ids.len(), unique, weighted)
        );
    }
    ExitCode::SUCCESS
}

/// Prints `value` as indented JSON; the exit code to return if it cannot.
fn print_json(value: &impl serde::Serialize) -> Result<(), ExitCode> {
    let text = serde_json::to_string_pretty(value).map_err(|e| fail(1, e))?;
    println!("{text}");
    Ok(())
}

fn config_sign(key: &Path, file: &Path) -> ExitCode {
    let key = match document::load_signing_key(key) {
        Ok(k) => k,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let payload = match std::fs::read_to_string(file) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_CONFIG, format!("{}: {e}", file.display())),
    };
    match document::sign(&key, &payload) {
        Ok(signed) => {
            print!("{signed}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_CONFIG, format!("{}: {e}", file.display())),
    }
}

fn config_public_key(key: &Path) -> ExitCode {
    let public = document::load_signing_key(key)
        .map(|k| k.verifying_key())
        .or_else(|_| document::load_public_key_pem(key));
    match public {
        Ok(k) => {
            println!("{}", document::public_key_base64(&k));
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_CONFIG, e),
    }
}

fn telemetry_watch(options: WatchOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, e),
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(watch::watch(options, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, e),
    }
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("nodus: {msg}");
    ExitCode::from(code)
}

fn run(path: Option<&Path>, started: Instant) -> ExitCode {
    let (config, source) = match Config::resolve(path) {
        Ok(pair) => pair,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    if let Some(msg) = privileges::check(&Capability::DAEMON) {
        return fail(EXIT_NOPERM, msg);
    }
    logging::init(&config.log);
    let opts = RunOptions {
        config,
        source,
        notifier: Notifier::from_env(),
        started,
        extra: Vec::new(),
        stop: None,
    };
    match daemon::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, e),
    }
}

fn probe_cmd(json: bool) -> ExitCode {
    logging::init(&LogConfig {
        target: LogTarget::Stderr,
        ..LogConfig::default()
    });
    if let Some(msg) = privileges::check(&Capability::DAEMON) {
        eprintln!("nodus: warning: {msg}; results below reflect that");
    }
    for m in probe::ensure_mounts() {
        eprintln!("nodus: mounted {m}");
    }
    let report = ProbeReport::run();
    if json {
        if let Err(code) = print_json(&report) {
            return code;
        }
    } else {
        print!("{}", report.render());
    }
    ExitCode::SUCCESS
}

fn profile_show(json: bool, config: Option<&Path>) -> ExitCode {
    let config = match Config::resolve(config) {
        Ok((c, _)) => c,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let topo = match Topology::discover() {
        Ok(t) => t,
        Err(e) => return fail(1, format!("cannot read the topology: {e}")),
    };
    let chosen = profile::choose(&config.profile, &topo, Path::new("/"));
    if json {
        let report = serde_json::json!({
            "topology": topo,
            "profile": chosen.profile,
            "source": chosen.origin.to_string(),
            "fallback": chosen.fallback,
        });
        println!("{report}");
        return ExitCode::SUCCESS;
    }
    println!("detected topology: {}", topo.summary());
    for n in &topo.nodes {
        let d: Vec<String> = n.distances.iter().map(u32::to_string).collect();
        println!(
            "  node{}: cpus {}, {} MiB, distances {}",
            n.id,
            n.cpus,
            n.memory_mib,
            d.join(" ")
        );
    }
    for c in &topo.clusters {
        println!("  cluster: cpus {}", c.cpus);
    }
    for c in &topo.caches {
        println!("  L{} shared by cpus {}", c.level, c.cpus);
    }
    let id = &topo.identity;
    println!(
        "identity: compatible {:?}, dmi {:?}, cpu parts {:?}",
        id.compatible, id.dmi_product, id.cpu_parts
    );
    println!("profile: {} ({})", chosen.profile.board.name, chosen.origin);
    if let Some(why) = &chosen.fallback {
        println!("  not applied as asked: {why}");
    }
    ExitCode::SUCCESS
}

fn profile_check(paths: &[PathBuf]) -> ExitCode {
    let mut bad = false;
    for path in paths {
        let p = match profile::load(&profile::Origin::File(path.clone())) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("nodus: {e}");
                bad = true;
                continue;
            }
        };
        let problems = profile::check_structure(&p);
        if problems.is_empty() {
            println!("{}: ok ({})", path.display(), p.board.name);
        }
        for problem in problems {
            eprintln!("nodus: profile {}: {problem}", path.display());
            bad = true;
        }
    }
    if bad {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--socket`, else the socket of the config `nodus run` would use.
fn control_socket(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(|| {
        Config::resolve(None)
            .map(|(c, _)| c.control.socket)
            .unwrap_or_else(|_| Config::default().control.socket)
    })
}

fn parse_sort(name: &str) -> Result<top::SortBy, String> {
    top::SortBy::parse(name)
        .ok_or_else(|| format!("{name:?}: one of memory, cpu, remote, migrations"))
}

/// `nodus top`: JSON or one text frame for scripts, else the live view
/// (which needs a terminal).
fn run_top(
    once: bool,
    json: bool,
    interval: f64,
    sort: top::SortBy,
    socket: Option<PathBuf>,
) -> ExitCode {
    use std::io::IsTerminal;
    if !(interval.is_finite() && (0.1..=3600.0).contains(&interval)) {
        return fail(2, "--interval: seconds from 0.1 to 3600");
    }
    let options = top::TopOptions {
        socket: control_socket(socket),
        interval: std::time::Duration::from_secs_f64(interval),
        sort,
    };
    let mut stdout = std::io::stdout().lock();
    let done = if json {
        top::json(&options, &mut stdout)
    } else if once {
        top::once(&options, top::width(), &mut stdout)
    } else if !std::io::stdout().is_terminal() {
        return fail(
            2,
            "nodus top needs a terminal; --once prints one frame, --json the figures",
        );
    } else {
        drop(stdout);
        top::live(&options)
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, e),
    }
}

fn ps(json: bool, tree: bool, request: Request, socket: Option<PathBuf>) -> ExitCode {
    let data = match control::request(&control_socket(socket), &request) {
        Ok(d) => d,
        Err(e) => return fail(1, e),
    };
    if json {
        println!("{data}");
        return ExitCode::SUCCESS;
    }
    match serde_json::from_value::<PsReport>(data) {
        Ok(report) => {
            print!(
                "{}",
                proccache::render::render(&report, tree, procfs::now_boot_ns())
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, format!("unexpected ps reply: {e}")),
    }
}

/// `nodus status --describe`: every stat, from the components' declarations.
fn describe_stats(json: bool, markdown: bool) -> ExitCode {
    let tables = daemon::stat_tables();
    if markdown {
        print!("{}", supervisor::stats_markdown(&tables));
    } else if json {
        let described: serde_json::Map<String, serde_json::Value> = tables
            .iter()
            .map(|(component, fields)| {
                let fields: Vec<serde_json::Value> = fields
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "name": f.name,
                            "kind": f.kind,
                            "optional": f.optional,
                            "description": f.description(),
                        })
                    })
                    .collect();
                (component.to_string(), serde_json::Value::Array(fields))
            })
            .collect();
        println!("{}", serde_json::Value::Object(described));
    } else {
        for (component, fields) in &tables {
            println!("{component}");
            let width = fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
            for f in *fields {
                let kind = if f.optional {
                    format!("{}?", f.kind)
                } else {
                    f.kind.to_owned()
                };
                println!("  {:width$}  {kind:9} {}", f.name, f.description());
            }
        }
    }
    ExitCode::SUCCESS
}

fn status(json: bool, socket: Option<PathBuf>) -> ExitCode {
    let data = match control::request(&control_socket(socket), &Request::Status {}) {
        Ok(d) => d,
        Err(e) => return fail(1, e),
    };
    if json {
        println!("{data}");
        return ExitCode::SUCCESS;
    }
    match serde_json::from_value::<StatusReport>(data) {
        Ok(s) => {
            print!("{}", render_status(&s));
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, format!("unexpected status reply: {e}")),
    }
}

fn render_status(s: &StatusReport) -> String {
    let mut out = format!(
        "nodus {} (pid {}), up {}, ready in {}, RSS {:.1} MiB\nconfig: {}\nkernel: {} ({}): {}\ncomponents:\n",
        s.version,
        s.pid,
        human_duration(s.uptime_ms),
        s.ready_ms.map_or("-".into(), |ms| format!("{ms} ms")),
        s.rss_bytes as f64 / (1024.0 * 1024.0),
        s.config,
        s.kernel.kernel,
        s.kernel.machine,
        s.kernel.summary(),
    );
    if s.log_lines_dropped > 0 {
        out.push_str(&format!(
            "log: {} lines dropped (syslog did not read them)\n",
            s.log_lines_dropped
        ));
    }
    for c in &s.components {
        out.push_str(&format!("  {:<12} {}\n", c.name, c.health));
        for (k, v) in &c.stats {
            let v = serde_json::to_string(v).unwrap_or_default();
            out.push_str(&format!("      {k:<20} {}\n", v.trim_matches('"')));
        }
    }
    out
}

fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
    }
}
