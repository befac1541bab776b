//! Command-line interface. Exit codes: 0 success (for `plan
//! --detailed-exitcode`: no changes), 1 error, 2 `plan --detailed-exitcode`
//! found changes, 130 interrupted.
//!
//! Output: results on stdout, through [`term::outln`] (a closed pipe is not
//! an error and never a panic); progress, warnings and diagnostics on stderr
//! through `tracing` ([`logging`]) or, on a terminal, progress bars
//! ([`progress`]). `print!`-family macros are denied here so it stays so.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod apply;
mod auto_failover;
mod autoscale;
mod autoscale_fleet;
mod autoscale_replicas;
mod backup;
mod config;
mod dashboard;
mod doctor;
mod inspect;
mod install;
mod logging;
mod logs;
mod maintenance;
mod ops;
mod plan;
mod preflight;
mod progress;
mod providers;
mod reconfigure;
mod releases;
mod report;
mod run;
mod scale;
mod session;
mod ssh;
mod state;
pub(crate) mod term;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use report::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "appgrid",
    version,
    about = "Heroku-style liquid scaling on your own cloud account"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More detail on stderr: -v debug, -vv trace (APPGRID_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log lines as text (for people) or JSON (one object a line, for machines).
    #[arg(
        long,
        value_enum,
        default_value_t,
        global = true,
        value_name = "FORMAT"
    )]
    log_format: logging::LogFormat,
}

/// `--json`: print the result as JSON instead of text.
#[derive(Debug, Clone, Copy, clap::Args)]
struct JsonArg {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct StateArgs {
    /// State file, or s3://BUCKET/KEY (default: [state] in the manifest, else
    /// .appgrid/APP/state.json beside it).
    #[arg(long, value_name = "PATH", global = true)]
    state: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct LockArgs {
    /// How long to wait for another appgrid holding the state lock (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lock_timeout: Duration,
}

/// What `apply` and `destroy` share.
#[derive(Debug, clap::Args)]
struct WalkArgs {
    file: PathBuf,
    /// Steps running at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallelism: u16,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// After `appgrid rollback`: release the manifest's release again.
    #[arg(long)]
    roll_forward: bool,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    state: StateArgs,
    /// Go ahead with a plan that destroys the database's machines and their
    /// data (a final backup is still taken when [database.backup] is set).
    #[arg(long)]
    allow_data_loss: bool,
    /// Take no final backup before destroying the database (needs --allow-data-loss).
    #[arg(long)]
    skip_final_backup: bool,
}

impl WalkArgs {
    fn options(self, destroy: bool) -> apply::Options {
        apply::Options {
            file: self.file,
            parallelism: self.parallelism.into(),
            yes: self.yes,
            lock_timeout: self.lock.lock_timeout,
            state: self.state.state,
            destroy,
            data_loss: backup::DataLossFlags {
                allow_data_loss: self.allow_data_loss,
                skip_final_backup: self.skip_final_backup,
            },
            roll_forward: self.roll_forward,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and check a manifest; report every problem at once.
    Validate { file: PathBuf },
    /// Show what apply would change, and why.
    Plan {
        file: PathBuf,
        /// Save the plan for `appgrid apply PLAN`.
        #[arg(short = 'o', long = "out", value_name = "PLAN")]
        out: Option<PathBuf>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 0 with no changes, 2 with changes, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Refresh what exists before planning (`--refresh=false`: plan from state alone).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        refresh: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Converge the cloud to a manifest, or apply a saved plan (*.plan.json).
    Apply(WalkArgs),
    /// Remove everything the app owns, and nothing else.
    Destroy(WalkArgs),
    /// Set the web count and/or the replica count: shows the plan, then
    /// (after a confirm) writes them into the manifest in place, comments
    /// kept, and applies exactly that plan (`heroku ps:scale`'s job).
    Scale {
        file: PathBuf,
        /// App servers: `[web] count` (refused with [autoscale]).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        web: Option<u32>,
        /// Database replicas: `[database] replicas` (refused with [autoscale.replicas]).
        #[arg(long, value_name = "M")]
        replicas: Option<u32>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the resource graph as Graphviz DOT.
    Graph { file: PathBuf },
    /// Check what applying the manifest needs on this machine and in the
    /// cloud, and say how to fix what is missing (`--install`: install it).
    Doctor {
        file: PathBuf,
        /// Install the missing Debian packages (apt-get, as root or through
        /// sudo), leaving their own services stopped and disabled.
        #[arg(long)]
        install: bool,
        /// With --install: do not ask first.
        #[arg(long, requires = "install")]
        yes: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show the running app: machines, load balancer servers, cache, replication lag.
    Status {
        file: PathBuf,
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print a completion script: `appgrid completions bash > /etc/bash_completion.d/appgrid`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Keep the web tier sized to its load: every `interval`, or once (`--once`, for cron and timers).
    Autoscale {
        #[command(subcommand)]
        command: Option<AutoscaleCommand>,
        file: Option<PathBuf>,
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
        /// After every pass, write the runner's heartbeat here (what
        /// `autoscale install` sets up on the fleet).
        #[arg(long, value_name = "PATH", hide = true)]
        heartbeat: Option<PathBuf>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Database operations.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The numbered releases (newest first), or one of them: `releases FILE v3`.
    Releases {
        file: PathBuf,
        /// One release, e.g. v3.
        release: Option<String>,
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Run an earlier release again on every web server (default: the one
    /// before the active one), rolling and drained; the manifest is not edited.
    Rollback {
        file: PathBuf,
        /// The release, e.g. v3.
        release: Option<String>,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Maintenance mode: the load balancer answers 503 with a message (and
    /// Retry-After) while the app servers keep running; `off` ends it.
    Maintenance {
        file: PathBuf,
        #[arg(value_enum)]
        switch: maintenance::Switch,
        /// What visitors read (one line; default: a short notice).
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The app's config vars: list them (values hidden unless --show), or
    /// `config set FILE KEY=VALUE…` / `config set FILE KEY` (value from
    /// stdin) / `config unset FILE KEY…`; a change re-releases every web server.
    Config {
        #[command(subcommand)]
        command: Option<ConfigCommand>,
        file: Option<PathBuf>,
        /// Print the values (asks first on a terminal).
        #[arg(long)]
        show: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// A one-off command on a web server, in its current release with the
    /// app's env: `appgrid run FILE [--on web[1]] -- CMD ARGS…`; its exit
    /// status is appgrid's.
    Run {
        file: PathBuf,
        /// The web server (default: the first).
        #[arg(long, value_name = "ADDRESS")]
        on: Option<String>,
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The app's log from every web server (or the logs of the machines
    /// named: lb, db.primary, db.replica[i], cache[i]), merged by time, each
    /// line prefixed with its address.
    Logs {
        file: PathBuf,
        /// Machines, e.g. 'web[1]', lb, db.primary (default: every web server).
        addresses: Vec<String>,
        /// Only this service's log on each machine: app, haproxy, postgres,
        /// slon, memcached.
        #[arg(long, value_name = "SERVICE")]
        service: Option<String>,
        /// Lines from each log (default 100; 10000 with --since).
        #[arg(short = 'n', long = "lines")]
        lines: Option<usize>,
        /// Only lines written in this last while, e.g. 10m, 2h.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        /// Keep printing new lines until Ctrl-C.
        #[arg(short = 'f', long)]
        follow: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// A shell on one of the app's machines (`ssh FILE web[0]`), or one
    /// command (`ssh FILE db.primary -- uptime`), through the same transport
    /// as apply with the pinned host key; `local` provider: a shell in the
    /// machine's directory.
    Ssh {
        file: PathBuf,
        /// The machine, e.g. 'web[0]', lb, db.primary.
        address: String,
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Serve the control panel for the app (prints its URL with a one-time
    /// login token): overview, releases and rollback, logs, database, autoscaling.
    Dashboard {
        file: PathBuf,
        /// Where to listen; an address beyond loopback needs --allow-remote and TLS.
        #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// Allow listening on an address other than loopback (needs --tls-cert and --tls-key).
        #[arg(long)]
        allow_remote: bool,
        /// The TLS certificate chain (PEM).
        #[arg(long, value_name = "PEM")]
        tls_cert: Option<PathBuf>,
        /// The TLS certificate's private key (PEM).
        #[arg(long, value_name = "PEM")]
        tls_key: Option<PathBuf>,
        /// How often the overview asks the machines for their status while watched.
        #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
        interval: Duration,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Inspect the state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Set config vars: KEY=VALUE…, or one KEY whose value is read from stdin
    /// (so a secret stays out of argv and shell history).
    Set {
        file: PathBuf,
        #[arg(required = true, value_name = "KEY=VALUE|KEY")]
        vars: Vec<String>,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove config vars.
    Unset {
        file: PathBuf,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AutoscaleCommand {
    /// Run the autoscaler on a machine of the app (default: the load
    /// balancer): copies this binary, the manifest and what it references,
    /// and starts it (systemd on aws, appgrid's supervisor on local and hosts).
    Install {
        file: PathBuf,
        /// The machine: `lb`, or a resource address such as `web[0]`.
        #[arg(long, default_value = "lb", value_name = "lb|ADDRESS")]
        on: String,
        /// An AWS shared credentials file for the runner (copied, mode 0600);
        /// without it, the machine's own (an instance role on aws).
        #[arg(long, value_name = "FILE")]
        credentials: Option<PathBuf>,
        /// `loop` (one process, a pass every interval) or `timer` (a systemd
        /// timer starting `autoscale --once`; aws only).
        #[arg(long, value_enum, default_value = "loop")]
        mode: FleetMode,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Where the installed autoscaler runs, its version, last pass and heartbeat.
    Status {
        file: PathBuf,
        #[arg(long, default_value = "lb", value_name = "lb|ADDRESS")]
        on: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Stop the installed autoscaler and remove it (nothing when it is not there).
    Uninstall {
        file: PathBuf,
        #[arg(long, default_value = "lb", value_name = "lb|ADDRESS")]
        on: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The decisions so far: time, metric, from -> to, reason.
    History {
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        /// Also write the recorded demand as a `minute,requests` trace to
        /// this file, for `autoscale simulate --trace`.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Replay a `minute,requests` trace through the same decide, with a capacity model.
    Simulate {
        file: PathBuf,
        #[arg(long)]
        trace: PathBuf,
        /// Multiply the trace's requests by this.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Requests per second one instance serves at the target.
        #[arg(long, default_value_t = 50.0)]
        capacity: f64,
        /// Seconds from asking for an instance to it serving.
        #[arg(long, default_value_t = 120)]
        boot: u64,
        /// Use the predictive option (daily and weekly seasonality).
        #[arg(long)]
        predictive: bool,
        /// The policy to simulate, whatever the manifest says.
        #[arg(long, value_enum)]
        policy: Option<SimulatedPolicy>,
        /// For the forecast policy: the quantile of its recent errors the
        /// margin covers (0.5 to 0.999; higher is more cautious).
        #[arg(long, value_parser = parse_quantile)]
        quantile: Option<f64>,
        /// Also replay Kubernetes HPA and AWS target tracking on the same
        /// model; print the three side by side (compare.csv, compare.svg).
        #[arg(long)]
        compare: bool,
        /// Where timeline.csv and timeline.svg go.
        #[arg(long, default_value = "autoscale-simulation")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Run a schema change (SQL file) on every database node through Slony-I's EXECUTE SCRIPT.
    Migrate {
        file: PathBuf,
        sql: PathBuf,
        /// Say what would run on which nodes (the SQL is tried on the origin
        /// in a transaction that is rolled back); change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// psql as the app's user to the primary (or `--replica N`); arguments
    /// after `--` go to psql: `db psql FILE -- -c 'select 1'`.
    Psql {
        file: PathBuf,
        /// The replica, e.g. 0 for db.replica[0].
        #[arg(long, value_name = "N")]
        replica: Option<u32>,
        #[arg(last = true, value_name = "PSQL_ARGS")]
        args: Vec<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Make a replica the origin of the replicated set (MOVE SET); the app follows it.
    Switchover {
        file: PathBuf,
        /// The replica to promote, e.g. `db.replica[0]`.
        replica: String,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The origin is dead: promote the most advanced replica (Slony-I FAILOVER),
    /// drop the dead node, point the app at the new origin. Refused while the
    /// origin answers.
    Failover {
        file: PathBuf,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Take a full backup of the database origin now ([database.backup]).
    Backup {
        file: PathBuf,
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List the app's backups: id, time, size, origin node, checksum.
    Backups {
        file: PathBuf,
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Restore a backup (or a point in time after it) into a new primary (the
    /// replicas subscribe to it, the old one is retired), or over the origin
    /// (--in-place).
    Restore {
        file: PathBuf,
        /// The backup's id, as `appgrid db backups` lists it.
        backup: String,
        /// Replay the archived WAL up to this time (e.g. "2026-12-02 14:05:00+00").
        #[arg(long, value_name = "TIME")]
        to_time: Option<String>,
        /// Replace the running origin's data (its current data is lost).
        #[arg(long)]
        in_place: bool,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// List every resource in state.
    List {
        file: PathBuf,
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show one resource (secrets redacted).
    Show {
        file: PathBuf,
        address: String,
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Drop a machine's pinned SSH host key (after a rebuild on purpose): the
    /// next apply pins the key the machine presents then.
    ForgetHostKey {
        file: PathBuf,
        address: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the state as JSON (secrets redacted unless --raw).
    Pull {
        file: PathBuf,
        /// Print secrets in clear (asks first on a terminal; --yes elsewhere).
        #[arg(long)]
        raw: bool,
        /// With --raw: do not ask.
        #[arg(long, requires = "raw")]
        yes: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove a stuck state lock, named by the ID its error message shows (asks first).
    Unlock {
        file: PathBuf,
        lock_id: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Move the state to S3 (`--to s3://BUCKET/KEY`) or back (`--to local`,
    /// or a path), keeping its lineage and serial.
    Migrate {
        file: PathBuf,
        #[arg(long, value_name = "s3://BUCKET/KEY|local|PATH")]
        to: String,
        /// The destination bucket's region (default: [state]'s, or the AWS chain's).
        #[arg(long)]
        region: Option<String>,
        /// An S3-compatible endpoint for the destination.
        #[arg(long)]
        endpoint: Option<String>,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// `autoscale install --mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FleetMode {
    Loop,
    Timer,
}

/// `autoscale simulate --policy`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SimulatedPolicy {
    Reactive,
    Forecast,
}

/// A quantile for `--quantile`: 0.5 to 0.999.
fn parse_quantile(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(q) if (0.5..=0.999).contains(&q) => Ok(q),
        _ => Err(format!(
            "`{s}` is not a quantile from 0.5 to 0.999, e.g. 0.85"
        )),
    }
}

/// `90s`, `5m`, `1h`, `250ms`, or plain seconds: the manifest's parser.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let with_unit = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        format!("{s}s")
    } else {
        s.to_string()
    };
    appgrid::manifest::parse_duration(&with_unit).map_err(|e| match e {
        appgrid::manifest::DurationError::Form(_) => {
            format!("`{s}` is not a duration; write e.g. 30s, 5m or 1h")
        }
        appgrid::manifest::DurationError::TooLong(_) => {
            format!("`{s}` is too long: the longest accepted is 8784h (366 days)")
        }
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = term::term().stderr_color;
    console::set_colors_enabled(term::term().stdout_color);
    console::set_colors_enabled_stderr(color);
    logging::init(cli.verbose, cli.log_format, color);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report::print_failure(&Failure::Message(format!(
                "cannot start the async runtime: {e}"
            )));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    match result {
        Ok(code) => code,
        Err(failure) => {
            report::print_failure(&failure);
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Validate { file } => inspect::validate(&file),
        Command::Plan {
            file,
            out,
            json,
            detailed_exitcode,
            refresh,
            state,
        } => {
            plan::run(plan::Options {
                file,
                out,
                json,
                detailed_exitcode,
                refresh,
                state: state.state,
            })
            .await
        }
        Command::Apply(args) => apply::run(args.options(false)).await,
        Command::Destroy(args) => apply::run(args.options(true)).await,
        Command::Scale {
            file,
            web,
            replicas,
            yes,
            lock,
            state,
        } => {
            scale::run(scale::Options {
                file,
                counts: appgrid::manifest::edit::Counts { web, replicas },
                yes,
                lock_timeout: lock.lock_timeout,
                state: state.state,
            })
            .await
        }
        Command::Graph { file } => inspect::graph(&file),
        Command::Doctor {
            file,
            install,
            yes,
            json,
        } => doctor::run(&file, install, yes, json.json).await,
        Command::Status { file, json, state } => {
            ops::status(&file, state.state.as_deref(), json.json).await
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "appgrid", &mut script);
            term::out!("{}", String::from_utf8_lossy(&script));
            Ok(ExitCode::SUCCESS)
        }
        Command::Autoscale {
            command,
            file,
            once,
            heartbeat,
            state,
        } => match (command, file) {
            (
                Some(AutoscaleCommand::Install {
                    file,
                    on,
                    credentials,
                    mode,
                    state,
                }),
                _,
            ) => {
                autoscale_fleet::install(autoscale_fleet::InstallOptions {
                    file,
                    on,
                    credentials,
                    mode: match mode {
                        FleetMode::Loop => appgrid::autoscale::fleet::RunnerMode::Loop,
                        FleetMode::Timer => appgrid::autoscale::fleet::RunnerMode::Timer,
                    },
                    state: state.state,
                })
                .await
            }
            (Some(AutoscaleCommand::Status { file, on, state }), _) => {
                autoscale_fleet::status(&file, &on, state.state.as_deref()).await
            }
            (Some(AutoscaleCommand::Uninstall { file, on, state }), _) => {
                autoscale_fleet::uninstall(&file, &on, state.state.as_deref()).await
            }
            (Some(AutoscaleCommand::History { file, state, trace }), _) => {
                autoscale::history(&file, state.state.as_deref(), trace.as_deref())
            }
            (
                Some(AutoscaleCommand::Simulate {
                    file,
                    trace,
                    scale,
                    capacity,
                    boot,
                    predictive,
                    policy,
                    quantile,
                    compare,
                    out,
                }),
                _,
            ) => autoscale::simulate(autoscale::SimulateOptions {
                compare,
                file,
                trace,
                scale,
                capacity,
                boot,
                out,
                predictive,
                quantile,
                policy: policy.map(|p| match p {
                    SimulatedPolicy::Reactive => appgrid::manifest::PolicyKind::Reactive,
                    SimulatedPolicy::Forecast => appgrid::manifest::PolicyKind::Forecast,
                }),
            }),
            (None, Some(file)) => {
                autoscale::run(&file, once, state.state.as_deref(), heartbeat.as_deref()).await
            }
            (None, None) => Err(Failure::Message(
                "usage: appgrid autoscale FILE [--once] | history FILE | simulate FILE --trace CSV"
                    .into(),
            )),
        },
        Command::Db { command } => match command {
            DbCommand::Migrate {
                file,
                sql,
                dry_run,
                lock,
                state,
            } => {
                ops::migrate(
                    &file,
                    &sql,
                    dry_run,
                    state.state.as_deref(),
                    lock.lock_timeout,
                )
                .await
            }
            DbCommand::Switchover {
                file,
                replica,
                lock,
                state,
            } => ops::switchover(&file, &replica, state.state.as_deref(), lock.lock_timeout).await,
            DbCommand::Psql {
                file,
                replica,
                args,
                state,
            } => ssh::psql(&file, replica, args, state.state.as_deref()).await,
            DbCommand::Failover { file, lock, state } => {
                ops::failover(&file, state.state.as_deref(), lock.lock_timeout).await
            }
            DbCommand::Backup {
                file,
                json,
                lock,
                state,
            } => backup::backup(&file, state.state.as_deref(), lock.lock_timeout, json.json).await,
            DbCommand::Backups { file, json, state } => {
                backup::backups(&file, state.state.as_deref(), json.json).await
            }
            DbCommand::Restore {
                file,
                backup: id,
                to_time,
                in_place,
                lock,
                state,
            } => {
                backup::restore(
                    &file,
                    &id,
                    to_time,
                    in_place,
                    state.state.as_deref(),
                    lock.lock_timeout,
                )
                .await
            }
        },
        Command::Releases {
            file,
            release,
            json,
            state,
        } => releases::run(&file, release.as_deref(), state.state.as_deref(), json.json),
        Command::Rollback {
            file,
            release,
            lock,
            state,
        } => {
            releases::rollback(
                &file,
                release.as_deref(),
                state.state.as_deref(),
                lock.lock_timeout,
            )
            .await
        }
        Command::Maintenance {
            file,
            switch,
            message,
            lock,
            state,
        } => {
            maintenance::run(
                &file,
                switch,
                message,
                state.state.as_deref(),
                lock.lock_timeout,
            )
            .await
        }
        Command::Config {
            command,
            file,
            show,
            state,
        } => match (command, file) {
            (
                Some(ConfigCommand::Set {
                    file,
                    vars,
                    lock,
                    state,
                }),
                _,
            ) => {
                config::change(
                    &file,
                    Some(&vars),
                    None,
                    state.state.as_deref(),
                    lock.lock_timeout,
                )
                .await
            }
            (
                Some(ConfigCommand::Unset {
                    file,
                    keys,
                    lock,
                    state,
                }),
                _,
            ) => {
                config::change(
                    &file,
                    None,
                    Some(&keys),
                    state.state.as_deref(),
                    lock.lock_timeout,
                )
                .await
            }
            (None, Some(file)) => config::list(&file, state.state.as_deref(), show),
            (None, None) => Err(Failure::Message(
                "appgrid config needs a manifest: `appgrid config FILE`".to_string(),
            )),
        },
        Command::Run {
            file,
            on,
            command,
            state,
        } => run::run(&file, on.as_deref(), command, state.state.as_deref()).await,
        Command::Logs {
            file,
            addresses,
            service,
            lines,
            since,
            follow,
            state,
        } => {
            logs::run(
                &file,
                &addresses,
                service.as_deref(),
                lines,
                since,
                follow,
                state.state.as_deref(),
            )
            .await
        }
        Command::Ssh {
            file,
            address,
            command,
            state,
        } => ssh::ssh(&file, &address, command, state.state.as_deref()).await,
        Command::Dashboard {
            file,
            listen,
            allow_remote,
            tls_cert,
            tls_key,
            interval,
            lock,
            state,
        } => {
            dashboard::run(dashboard::Options {
                file,
                listen,
                allow_remote,
                tls_cert,
                tls_key,
                state: state.state,
                lock_timeout: lock.lock_timeout,
                interval,
            })
            .await
        }
        Command::State { command } => match command {
            StateCommand::List { file, json, state } => {
                inspect::state_list(&file, state.state.as_deref(), json.json)
            }
            StateCommand::Show {
                file,
                address,
                json,
                state,
            } => inspect::state_show(&file, &address, state.state.as_deref(), json.json),
            StateCommand::ForgetHostKey {
                file,
                address,
                state,
            } => inspect::forget_host_key(&file, &address, state.state.as_deref()),
            StateCommand::Pull {
                file,
                raw,
                yes,
                state,
            } => state::pull(&file, state.state.as_deref(), raw, yes),
            StateCommand::Unlock {
                file,
                lock_id,
                yes,
                state,
            } => state::unlock(&file, &lock_id, state.state.as_deref(), yes),
            StateCommand::Migrate {
                file,
                to,
                region,
                endpoint,
                lock,
                state,
            } => state::migrate(state::MigrateOptions {
                file,
                to,
                state: state.state,
                region,
                endpoint,
                lock_timeout: lock.lock_timeout,
            }),
        },
    }
}

#[cfg(test)]
mod duration_arg_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn takes_units_and_plain_seconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn a_huge_lock_timeout_is_a_clear_error() {
        assert_eq!(
            parse_duration("99999999999h"),
            Err("`99999999999h` is too long: the longest accepted is 8784h (366 days)".into())
        );
        assert_eq!(
            parse_duration("99999999999999999999999"),
            Err(
                "`99999999999999999999999` is too long: the longest accepted is 8784h (366 days)"
                    .into()
            )
        );
        assert_eq!(
            parse_duration("1.5s"),
            Err("`1.5s` is not a duration; write e.g. 30s, 5m or 1h".into())
        );
    }
}
