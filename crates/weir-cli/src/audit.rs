//! `weir audit`: verify, query, export and look up the tamper-evident log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use weir_audit::{
    AuditEvent, AuditKey, ChainId, CheckpointSigner, Cursor, Filter, Origin, Page, Report,
};
use weir_engine::Audit;

use crate::storage::Storage;

/// Filters shared by `query` and `export`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FilterArgs {
    /// Only events by this principal.
    #[arg(long)]
    actor: Option<String>,
    /// Only events of this run.
    #[arg(long)]
    run: Option<String>,
    /// Only events of this stage.
    #[arg(long)]
    stage: Option<String>,
    /// Only events on this store.
    #[arg(long)]
    store: Option<String>,
    /// Only events on this path or below it (segment-aware).
    #[arg(long)]
    path_prefix: Option<String>,
    /// Only this action: read, write, list, delete, run_start, run_finish,
    /// plan_denied, token_mint, token_revoke, key_rotate, policy_loaded, access_review, authenticate, authorize.
    #[arg(long)]
    action: Option<String>,
    /// Only this decision: allow, deny, none.
    #[arg(long)]
    decision: Option<String>,
    /// Only events since this time: RFC 3339 or a duration ago (`30d`, `12h`).
    #[arg(long)]
    since: Option<String>,
    /// Only events before this time: RFC 3339 or a duration ago.
    #[arg(long)]
    until: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Check that the log is whole: prints OK, or the first damaged sequence
    /// number and the kind of damage (edited, deleted, reordered, truncated).
    Verify,
    /// Query events, oldest first, a page at a time.
    Query {
        #[command(flatten)]
        filter: FilterArgs,
        /// Events per page (1 to 10,000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this sequence number (the last one of the previous page).
        #[arg(long)]
        after_seq: Option<u64>,
        /// ... in this chain (the last one of the previous page; default:
        /// this process's own chain, `local` without `--database`).
        #[arg(long, requires = "after_seq")]
        after_chain: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        output: QueryFormat,
        /// Ask this weir server instead of the local log (token from
        /// `WEIR_TOKEN` or `weir login`); prints the events as JSON.
        #[arg(long)]
        server: Option<String>,
    },
    /// Export events for DuckDB or pandas.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// File format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the HMAC of a value (a token id) as stored in the log, to look it up.
    Hash {
        /// The value, e.g. a token's `jti`.
        value: String,
    },
}

/// Output of `audit query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum QueryFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
    /// CSV with a header.
    Csv,
}

/// Formats of `audit export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// `weir audit ...`.
pub(crate) fn audit(command: AuditCommand, storage: &Storage) -> anyhow::Result<ExitCode> {
    let state_dir = storage.dir();
    if let AuditCommand::Hash { value } = &command {
        let key = AuditKey::open_or_create(state_dir)?;
        println!("{}", key.hash_value(value));
        return Ok(ExitCode::SUCCESS);
    }
    if let AuditCommand::Query {
        filter,
        limit,
        after_seq,
        after_chain,
        server: Some(server),
        ..
    } = &command
    {
        return remote_query(server, filter, *limit, *after_seq, after_chain.as_deref());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let audit = storage.audit(Origin::Cli).await?;
        match command {
            AuditCommand::Verify => verify(&audit, state_dir).await,
            AuditCommand::Query {
                filter,
                limit,
                after_seq,
                after_chain,
                output,
                server: _,
            } => {
                let after = match after_seq {
                    Some(seq) => Some(Cursor {
                        chain: match after_chain {
                            Some(c) => ChainId::parse(&c)
                                .map_err(|e| anyhow::anyhow!("--after-chain: {e}"))?,
                            None => audit.sink().chain().clone(),
                        },
                        seq,
                    }),
                    None => None,
                };
                query(&audit, &filter, limit, after, output).await
            }
            AuditCommand::Export {
                filter,
                format,
                out,
            } => export(&audit, &filter, format, &out).await,
            AuditCommand::Hash { .. } => Ok(ExitCode::SUCCESS),
        }
    })
}

/// `audit query --server`: the same filters, asked of a server.
fn remote_query(
    server: &str,
    args: &FilterArgs,
    limit: u32,
    after_seq: Option<u64>,
    after_chain: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use crate::client::encode;
    let mut query = vec![format!("limit={limit}")];
    let fields = [
        ("actor", &args.actor),
        ("run", &args.run),
        ("stage", &args.stage),
        ("store", &args.store),
        ("path_prefix", &args.path_prefix),
        ("action", &args.action),
        ("decision", &args.decision),
        ("since", &args.since),
        ("until", &args.until),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            query.push(format!("{name}={}", encode(v)));
        }
    }
    if let Some(seq) = after_seq {
        query.push(format!("after_seq={seq}"));
    }
    if let Some(chain) = after_chain {
        query.push(format!("after_chain={}", encode(chain)));
    }
    let body = crate::client::get_json(server, &format!("/api/v1/audit?{}", query.join("&")))?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(ExitCode::SUCCESS)
}

async fn verify(audit: &Audit, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let signer = CheckpointSigner::open_or_create(state_dir)?;
    match weir_audit::verify(audit.sink().as_ref(), &signer.verifying_key()).await? {
        Report::Ok {
            chains,
            events,
            checkpoints,
        } => {
            println!(
                "OK: {events} events in {chains} chain(s), {checkpoints} signed checkpoint(s) verified"
            );
            Ok(ExitCode::SUCCESS)
        }
        Report::Damaged(d) if d.seq == 0 => {
            println!(
                "DAMAGED: chain `{}`: {:?} ({})",
                d.chain.as_str(),
                d.kind,
                d.detail
            );
            Ok(ExitCode::FAILURE)
        }
        Report::Damaged(d) => {
            println!(
                "DAMAGED: chain `{}` at seq {}: {:?} ({})",
                d.chain.as_str(),
                d.seq,
                d.kind,
                d.detail
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A point in time: RFC 3339, or a duration before now.
pub(crate) fn build_filter(args: &FilterArgs) -> anyhow::Result<Filter> {
    weir_engine::audit_query::FilterSpec {
        actor: args.actor.clone(),
        run: args.run.clone(),
        stage: args.stage.clone(),
        store: args.store.clone(),
        path_prefix: args.path_prefix.clone(),
        action: args.action.clone(),
        decision: args.decision.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
    }
    .to_filter()
    .map_err(anyhow::Error::msg)
}

async fn query(
    audit: &Audit,
    args: &FilterArgs,
    limit: u32,
    after: Option<Cursor>,
    output: QueryFormat,
) -> anyhow::Result<ExitCode> {
    let filter = build_filter(args)?;
    let page = Page { after, limit };
    let events = audit.sink().query(&filter, page).await?;
    match output {
        QueryFormat::Json => println!("{}", serde_json::to_string_pretty(&events)?),
        QueryFormat::Csv => print!("{}", to_csv(&events)),
        QueryFormat::Table => print!("{}", to_table(&events)),
    }
    if output == QueryFormat::Table
        && events.len() == limit as usize
        && let Some(last) = events.last()
    {
        if &last.chain == audit.sink().chain() {
            eprintln!("more events may follow: --after-seq {}", last.seq);
        } else {
            eprintln!(
                "more events may follow: --after-chain {} --after-seq {}",
                last.chain, last.seq
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cell(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn to_table(events: &[AuditEvent]) -> String {
    let mut out = format!(
        "{:>6}  {:26}  {:24}  {:14}  {:6}  {:28}  {}\n",
        "SEQ", "TIME", "ACTOR", "ACTION", "RESULT", "RUN/STAGE", "RESOURCE"
    );
    for e in events {
        let resource = match (&e.store, &e.path) {
            (Some(s), Some(p)) => format!("{s}:{p}"),
            _ => "-".into(),
        };
        let at = format!("{}/{}", cell(&e.run), cell(&e.stage));
        out.push_str(&format!(
            "{:>6}  {:26}  {:24}  {:14}  {:6}  {:28}  {}\n",
            e.seq,
            e.time.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            e.actor,
            e.action.as_str(),
            e.decision.as_str(),
            at,
            resource
        ));
    }
    out
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

fn to_csv(events: &[AuditEvent]) -> String {
    let mut out = String::from(
        "chain,seq,time,actor,run,stage,attempt,action,store,path,decision,reason,token_id_hmac,origin,hash\n",
    );
    for e in events {
        let fields = [
            e.chain.as_str().to_owned(),
            e.seq.to_string(),
            e.time.to_rfc3339(),
            e.actor.clone(),
            cell(&e.run).to_owned(),
            cell(&e.stage).to_owned(),
            e.attempt.map(|a| a.to_string()).unwrap_or_default(),
            e.action.as_str().to_owned(),
            cell(&e.store).to_owned(),
            cell(&e.path).to_owned(),
            e.decision.as_str().to_owned(),
            cell(&e.reason).to_owned(),
            e.token_id_hmac
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            e.origin.to_string(),
            e.hash.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Every event matching `filter`, all pages.
async fn export(
    audit: &Audit,
    args: &FilterArgs,
    format: ExportFormat,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let events = weir_engine::review::all_events(audit, &build_filter(args)?).await?;
    match format {
        ExportFormat::Jsonl => {
            let mut body = String::new();
            for e in &events {
                body.push_str(&serde_json::to_string(e)?);
                body.push('\n');
            }
            std::fs::write(out, body)?;
        }
        ExportFormat::Parquet => write_parquet(&events, out)?,
    }
    println!("exported {} event(s) to {}", events.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

fn write_parquet(events: &[AuditEvent], out: &Path) -> anyhow::Result<()> {
    use arrow::array::{
        ArrayRef, StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    let opt = |f: fn(&AuditEvent) -> Option<String>| -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<StringArray>())
    };
    let req = |f: fn(&AuditEvent) -> String| -> ArrayRef {
        Arc::new(events.iter().map(|e| Some(f(e))).collect::<StringArray>())
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("chain", DataType::Utf8, false),
        Field::new("seq", DataType::UInt64, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("actor", DataType::Utf8, false),
        Field::new("run", DataType::Utf8, true),
        Field::new("stage", DataType::Utf8, true),
        Field::new("attempt", DataType::UInt32, true),
        Field::new("action", DataType::Utf8, false),
        Field::new("store", DataType::Utf8, true),
        Field::new("path", DataType::Utf8, true),
        Field::new("decision", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("token_id_hmac", DataType::Utf8, true),
        Field::new("origin", DataType::Utf8, false),
        Field::new("prev_hash", DataType::Utf8, false),
        Field::new("hash", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        req(|e| e.chain.as_str().to_owned()),
        Arc::new(events.iter().map(|e| e.seq).collect::<UInt64Array>()),
        Arc::new(
            events
                .iter()
                .map(|e| Some(e.time.timestamp_micros()))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        req(|e| e.actor.clone()),
        opt(|e| e.run.clone()),
        opt(|e| e.stage.clone()),
        Arc::new(events.iter().map(|e| e.attempt).collect::<UInt32Array>()),
        req(|e| e.action.as_str().to_owned()),
        opt(|e| e.store.clone()),
        opt(|e| e.path.clone()),
        req(|e| e.decision.as_str().to_owned()),
        opt(|e| e.reason.clone()),
        opt(|e| e.token_id_hmac.as_ref().map(|t| t.as_str().to_owned())),
        req(|e| e.origin.to_string()),
        req(|e| e.prev_hash.to_string()),
        req(|e| e.hash.to_string()),
    ];
    let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), columns)?;
    let file = std::fs::File::create(out)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}
