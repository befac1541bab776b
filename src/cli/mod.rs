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
mod autoscale;
mod doctor;
mod inspect;
mod install;
mod logging;
mod ops;
mod plan;
mod preflight;
mod progress;
mod providers;
mod report;
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
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    state: StateArgs,
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
        #[command(flatten)]
        state: StateArgs,
    },
    /// Database operations.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Inspect the state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AutoscaleCommand {
    /// The decisions so far: time, metric, from -> to, reason.
    History {
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
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
        #[command(flatten)]
        lock: LockArgs,
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

/// `90s`, `5m`, `1h`, `250ms`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 30s, 5m or 1h"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("`{s}` is not a duration; write e.g. 30s, 5m or 1h")),
    }
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
            state,
        } => match (command, file) {
            (Some(AutoscaleCommand::History { file, state }), _) => {
                autoscale::history(&file, state.state.as_deref())
            }
            (
                Some(AutoscaleCommand::Simulate {
                    file,
                    trace,
                    scale,
                    capacity,
                    boot,
                    predictive,
                    out,
                }),
                _,
            ) => autoscale::simulate(autoscale::SimulateOptions {
                file,
                trace,
                scale,
                capacity,
                boot,
                out,
                predictive,
            }),
            (None, Some(file)) => autoscale::run(&file, once, state.state.as_deref()).await,
            (None, None) => Err(Failure::Message(
                "usage: appgrid autoscale FILE [--once] | history FILE | simulate FILE --trace CSV"
                    .into(),
            )),
        },
        Command::Db { command } => match command {
            DbCommand::Migrate {
                file,
                sql,
                lock,
                state,
            } => ops::migrate(&file, &sql, state.state.as_deref(), lock.lock_timeout).await,
            DbCommand::Switchover {
                file,
                replica,
                lock,
                state,
            } => ops::switchover(&file, &replica, state.state.as_deref(), lock.lock_timeout).await,
        },
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
