//! `weir`: the command-line tool for weir pipelines.

mod access;
mod audit;
mod client;
mod example;
mod graph;
mod keys;
mod load;
mod login;
mod plan;
mod review;
mod run;
mod runs;
mod serve;
mod storage;
mod token;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use weir_auth::SecretString;

use crate::storage::Storage;

/// mimalloc instead of the system allocator: the server allocates a few
/// small objects per request, and glibc's malloc cost about 15% of its CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A secure orchestrator for ML data pipelines.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
struct Cli {
    /// Where keys live, and run records and the audit log unless
    /// `--database` is given.
    #[arg(long, global = true, env = "WEIR_STATE_DIR", default_value = ".weir")]
    state_dir: PathBuf,
    /// Keep run records and the audit log in this PostgreSQL database
    /// (`postgres://user@host/db`), shared by every machine, instead of the
    /// state folder. Keys stay in the state folder.
    #[arg(
        long,
        global = true,
        env = "WEIR_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        value_parser = storage::secret_arg
    )]
    database: Option<SecretString>,
    /// The schema of weir's tables in `--database` (created if missing);
    /// default: the connection's `search_path`.
    #[arg(
        long,
        global = true,
        env = "WEIR_DATABASE_SCHEMA",
        value_name = "NAME",
        requires = "database"
    )]
    database_schema: Option<String>,
    /// The folder of policy files (grants) in force.
    #[arg(long, global = true, env = "WEIR_POLICIES", default_value = "policies")]
    policies: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// Output format for commands that print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// For people.
    Text,
    /// For machines.
    Json,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
enum Command {
    /// Check pipeline files and report every problem.
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show the stages in execution order, what each reads and writes, and the
    /// exact scope (with its justifying grants) each stage's token will carry.
    Plan {
        /// Pipeline file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Run a pipeline.
    Run {
        /// Pipeline file.
        file: PathBuf,
        /// Output format. `json` prints the run record and no progress.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Override the pipeline's `concurrency`.
        #[arg(long)]
        concurrency: Option<usize>,
        /// Run the stages on `weir worker`s through this Redis queue
        /// (`redis://host:port`) instead of in this process.
        #[arg(long, env = "WEIR_QUEUE")]
        queue: Option<String>,
    },
    /// Run stages dispatched by `weir run --queue`, until Ctrl-C or SIGTERM.
    Worker {
        /// The Redis queue, e.g. `redis://127.0.0.1:6379`.
        #[arg(long, env = "WEIR_QUEUE")]
        queue: String,
        /// Stages run at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seconds a task may go without a heartbeat before another worker
        /// takes it over (its first worker is presumed dead). Every worker
        /// on one queue should use the same value.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        visibility_timeout: u64,
    },
    /// Draw the stage graph.
    Graph {
        /// Pipeline file.
        file: PathBuf,
        /// Graph language.
        #[arg(long, value_enum, default_value_t = graph::GraphFormat::Dot)]
        format: graph::GraphFormat,
    },
    /// Inspect past runs.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Verify, query and export the audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Review access: unused and partly used grants, denied attempts.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Manage stage-token signing keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The folder of pipelines callers may run by name.
        #[arg(long, default_value = "pipelines")]
        pipelines: PathBuf,
        #[command(flatten)]
        idp: serve::AuthOptions,
    },
    /// Issue API tokens (needs the server's state folder).
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Store an API token for a server in the OS keyring.
    Login {
        /// The server, e.g. `http://127.0.0.1:8080`.
        #[arg(long)]
        server: String,
        /// Read the token from stdin instead of prompting.
        #[arg(long)]
        stdin: bool,
    },
    /// Remove the token stored for a server.
    Logout {
        /// The server.
        #[arg(long)]
        server: String,
    },
    /// Example data for the pipelines in `pipelines/`.
    Example {
        #[command(subcommand)]
        command: example::ExampleCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AccessCommand {
    /// For each grant: used, used in part, or never used in the window; every
    /// denied attempt; and a suggested narrower policy. The review is recorded.
    Review {
        /// The window, ending now (`30d`, `12h`).
        #[arg(long, default_value = "30d")]
        since: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let storage = || {
        Storage::new(
            &cli.state_dir,
            cli.database.clone(),
            cli.database_schema.as_deref(),
        )
    };
    let result = match cli.command {
        Command::Validate { files, output } => load::validate(&files, output),
        Command::Plan { file, output } => plan::plan(&file, &cli.policies, output),
        Command::Graph { file, format } => graph::graph(&file, format),
        Command::Run {
            file,
            output,
            concurrency,
            queue,
        } => storage().and_then(|storage| {
            run::run(
                &file,
                &storage,
                &cli.policies,
                output,
                concurrency,
                queue.as_deref(),
            )
        }),
        Command::Worker {
            queue,
            concurrency,
            visibility_timeout,
        } => storage().and_then(|storage| {
            worker::worker(
                &queue,
                concurrency,
                std::time::Duration::from_secs(visibility_timeout),
                &storage,
            )
        }),
        Command::Runs { command } => storage().and_then(|storage| runs::runs(command, &storage)),
        Command::Audit { command } => storage().and_then(|storage| audit::audit(command, &storage)),
        Command::Access {
            command: AccessCommand::Review { since, output },
        } => storage().and_then(|storage| review::review(&storage, &cli.policies, &since, output)),
        Command::Keys { command } => storage().and_then(|storage| keys::keys(command, &storage)),
        Command::Example { command } => example::example(command),
        Command::Serve {
            listen,
            pipelines,
            idp,
        } => storage()
            .and_then(|storage| serve::serve(&listen, &storage, &cli.policies, &pipelines, &idp)),
        Command::Token { command } => storage().and_then(|storage| token::token(command, &storage)),
        Command::Login { server, stdin } => {
            login::login(&server, stdin, client::store().as_ref()).map(|()| ExitCode::SUCCESS)
        }
        Command::Logout { server } => {
            login::logout(&server, client::store().as_ref()).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
