//! The `stitchbook` command line: the same engine as the app, with JSON output for scripts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stitchbook_engine::generate::{date_to_micros, write_generated, GenFormat, GenerateOptions};
use stitchbook_engine::info::workspace_info;
use stitchbook_engine::ingest::{
    import_paths, ColumnMapping, FormatOverride, ImportOptions, ImportStatus,
};
use stitchbook_engine::insights;
use stitchbook_engine::model::{self, person, ModelSettings};
use stitchbook_engine::resources::{self, ResourceSettings};
use stitchbook_engine::{CancelToken, EngineError, JobCtx, JobEvent, Workspace};

#[derive(Parser)]
#[command(
    name = "stitchbook",
    version,
    about = "Open product-analytics exports locally: load, model, answer, audit."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import export files or folders into a workspace (created if missing).
    Import {
        /// The workspace file (a DuckDB database).
        workspace: PathBuf,
        /// Files or folders (folders are read recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Override detection: a vendor (posthog, ...), a container (jsonl, csv, parquet) or vendor:container.
        #[arg(long)]
        format: Option<String>,
        /// Column mapping (JSON or TOML) for generic CSV / JSON lines / Parquet files.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Keep each record's original JSON in events.raw.
        #[arg(long)]
        keep_raw: bool,
        /// Print the per-file summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Summarise a workspace: imports, events by vendor, date range, top events.
    Info {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
        /// How many event names to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Search persons by id, email or name.
    Persons {
        workspace: PathBuf,
        /// Text to look for in ids, emails and names.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One person, by any of their ids: ids, properties, merges, warnings and sessions.
    Person {
        workspace: PathBuf,
        /// Any distinct id, device id, user id or person id.
        id: String,
        /// Show how each id joined this person: the chain of links with their source events.
        #[arg(long)]
        explain: bool,
        /// With --explain: only the chain from ID to this id.
        #[arg(long)]
        to: Option<String>,
        /// How many sessions to list.
        #[arg(long, default_value_t = 20)]
        sessions: usize,
        #[arg(long)]
        json: bool,
    },
    /// Stitched sessions, newest first.
    Sessions {
        workspace: PathBuf,
        /// Only this person (any of their ids).
        #[arg(long)]
        person: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One person's events in order (the timeline viewer's data): time, gap, event, page,
    /// session starts and identity merges.
    Timeline {
        workspace: PathBuf,
        /// Any of the person's ids.
        id: String,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long, default_value_t = 200)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The event catalog (volume, reach, first/last seen), or one event's properties.
    Catalog {
        workspace: PathBuf,
        /// Show this event's properties: types, fill rate, examples.
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Data-quality checks: naming collisions, mixed types, duplicates, clock skew, shared
    /// devices, quarantine.
    Quality {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Build the demo workspace from the project's sample-data folder (replacing OUT).
    Demo {
        out: PathBuf,
        /// The sample-data folder (default: the one in this source tree).
        #[arg(long)]
        sample_data: Option<PathBuf>,
        /// Replace OUT even when it is not a demo workspace (never a directory).
        #[arg(long)]
        force: bool,
    },
    /// Recompute identity, sessions and persons from the imported events.
    Rebuild {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show or change the model settings (identity mode, session rules, time zone, week start;
    /// a change rebuilds the model), what "now" is for insights (insights.now: data_end, the
    /// last event's time, or wall_clock) and DuckDB's memory limit and threads for the
    /// workspace.
    Settings {
        workspace: PathBuf,
        /// key=value, e.g. identity.mode=warehouse_last_value, sessions.timeout_seconds=900,
        /// insights.now=wall_clock, duckdb.memory_limit_mb=4096, duckdb.threads=default or
        /// sql.timeout_seconds=60.
        #[arg(long = "set")]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run an insight query (JSON file; see sample-data/queries/).
    Run {
        workspace: PathBuf,
        /// The query file.
        #[arg(long, required_unless_present = "saved")]
        query: Option<PathBuf>,
        /// Run a saved insight by name instead.
        #[arg(long, conflicts_with = "query")]
        saved: Option<String>,
        /// Save the query under this name as well.
        #[arg(long)]
        save_as: Option<String>,
        /// Resolve relative dates against this instant (RFC 3339; default: the end of the
        /// data, the last event's time, or the clock with insights.now=wall_clock).
        #[arg(long)]
        now: Option<String>,
        /// Also print the SQL and the timing.
        #[arg(long)]
        explain: bool,
        #[arg(long)]
        json: bool,
        /// Also draw the chart as a PNG image.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Also draw the chart as an SVG image.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// The chart's title (default: the query file's name).
        #[arg(long)]
        title: Option<String>,
    },
    /// Saved insights: list, show, delete (save with `run --save-as NAME`, run with
    /// `run --saved NAME`).
    Insight {
        #[command(subcommand)]
        which: InsightCommand,
    },
    /// Saved cohorts: save a definition, list, show members (CSV), delete.
    Cohort {
        #[command(subcommand)]
        which: CohortCommand,
    },
    /// Run one read-only SQL query against a workspace's tables (events, persons,
    /// person_map, sessions, event_sessions, profiles, accounts, quarantine, …); the same
    /// rules as the app's console: one SELECT, no files, a time limit.
    Sql {
        workspace: PathBuf,
        statement: String,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Stop the query after this many seconds (default: the workspace's
        /// sql.timeout_seconds, else 30).
        #[arg(long)]
        timeout: Option<u64>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// The persons behind one number of an insight (funnels: --cell 2, -2 or 2@value, funnel
    /// trends period:3:converted, :dropped or :entered; retention 0:1; trends 0:5 or 0:5@value; stickiness 3; lifecycle 3:new; paths 2_x or
    /// 1_x>2_y).
    Drill {
        workspace: PathBuf,
        #[arg(long)]
        query: PathBuf,
        #[arg(long, allow_hyphen_values = true)]
        cell: String,
        #[arg(long)]
        now: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show quarantined records with their reasons.
    Quarantine {
        workspace: PathBuf,
        /// Only this import.
        #[arg(long)]
        import: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Write a deterministic sample export and its ground truth (<out>.truth.json).
    Generate {
        #[arg(long, default_value_t = 2000)]
        events: usize,
        /// Export shape: posthog, amplitude (Export API zip if --out ends in .zip), mixpanel,
        /// segment, rudderstack, ga4, snowplow (enriched TSV); gzip if --out ends in .gz. `all`
        /// writes every shape of the same behaviour into the folder --out.
        #[arg(long, default_value = "posthog")]
        format: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of events delivered twice.
        #[arg(long, default_value_t = 0.01)]
        duplicates: f64,
        /// Share of events followed by a malformed line.
        #[arg(long, default_value_t = 0.002)]
        malformed: f64,
        /// First day of the simulated period (UTC).
        #[arg(long, default_value = "2024-01-01")]
        start: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// PII audit: scan, review findings, redacted export, audit report, retention.
    Pii {
        #[command(subcommand)]
        which: PiiCommand,
    },
    /// Benchmarks that print numbers.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand)]
enum InsightCommand {
    /// List saved insights.
    List {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print a saved insight's query JSON.
    Show { workspace: PathBuf, name: String },
    /// Delete a saved insight.
    Delete { workspace: PathBuf, name: String },
}

#[derive(Subcommand)]
enum CohortCommand {
    /// Save (or replace) a cohort from a JSON definition file.
    Save {
        workspace: PathBuf,
        name: String,
        #[arg(long)]
        definition: PathBuf,
    },
    /// List saved cohorts with their member counts.
    List {
        workspace: PathBuf,
        #[arg(long)]
        now: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A cohort's members as of the end of the data (or the clock with insights.now=wall_clock,
    /// or --now); --csv writes them to a file.
    Members {
        workspace: PathBuf,
        name: String,
        #[arg(long)]
        now: Option<String>,
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a saved cohort.
    Delete { workspace: PathBuf, name: String },
}

#[derive(Subcommand)]
enum PiiCommand {
    /// Scan every event, person and group property (and id columns) for PII; store the
    /// findings (review decisions are kept) and print the field report.
    Scan {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the latest scan's findings with their review state.
    List {
        workspace: PathBuf,
        /// Only findings that need review (never reviewed, or hits changed since).
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        json: bool,
    },
    /// Record a decision on a finding (id or a unique prefix).
    Review {
        workspace: PathBuf,
        finding: String,
        /// expected, needs_redaction or false_positive.
        #[arg(long)]
        status: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        reviewer: String,
        /// The review time (RFC 3339; default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Page through the events that hit a finding (values masked), in event order.
    Events {
        workspace: PathBuf,
        /// The finding's id (or a unique prefix).
        #[arg(long)]
        finding: String,
        /// Hits to skip.
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show the full value of one finding's hit in one event; the access is logged (who, why,
    /// when, where; never the value).
    Reveal {
        workspace: PathBuf,
        #[arg(long)]
        finding: String,
        /// The event's id (event_seq, from `pii events`).
        #[arg(long)]
        event: i64,
        #[arg(long)]
        reviewer: String,
        #[arg(long)]
        reason: String,
        /// The reveal time (RFC 3339; default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The reveal (access) log, oldest first.
    RevealLog {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a redacted copy of the events (rules file: TOML or JSON) and verify it: a
    /// re-scan, and a search of the files for every original value redacted; exits 1 when
    /// the verification fails. Refused when a finding marked needs_redaction has no rule.
    Export {
        workspace: PathBuf,
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// parquet, csv or jsonl (default: the rules file's, else parquet).
        #[arg(long)]
        format: Option<String>,
        /// Write each event in its vendor's original shape (needs events imported with
        /// --keep-raw), one JSON-lines file per source file, gzipped when the source was.
        #[arg(long)]
        vendor_shape: bool,
        /// Also write the quarantined records, redacted, to quarantine.jsonl (otherwise they
        /// are left out, and the report says so).
        #[arg(long)]
        quarantine: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write the audit report: HTML (self-contained), plus .csv and .json beside it.
    Report {
        workspace: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Custom detectors (regular expressions, RE2 syntax) saved in the workspace.
    Rule {
        #[command(subcommand)]
        which: PiiRuleCommand,
    },
    /// Count events older than a date, by file; with --export, write a copy without them
    /// (redacted with --rules if given).
    Retention {
        workspace: PathBuf,
        /// The cut-off: events strictly before this date (YYYY-MM-DD, UTC) or instant.
        #[arg(long)]
        before: String,
        #[arg(long)]
        export: Option<PathBuf>,
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(long, default_value = "parquet")]
        format: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PiiRuleCommand {
    /// Save (or replace) a rule.
    Add {
        workspace: PathBuf,
        name: String,
        pattern: String,
        /// low, medium or high.
        #[arg(long, default_value = "medium")]
        severity: String,
    },
    List {
        workspace: PathBuf,
        #[arg(long)]
        json: bool,
    },
    Delete {
        workspace: PathBuf,
        name: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Generate and import N PostHog events, then time a full PII scan (events/s).
    Pii {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Scan this existing workspace instead of generating one (its findings are replaced).
        #[arg(long)]
        workspace: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Time the issue's insights and drill-downs on a generated workspace (reused between
    /// runs while it holds --events events).
    Insights {
        #[arg(long, default_value_t = 10_000_000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        files: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Import N generated events in a vendor's shape and compare with DuckDB's own reader on
    /// the same data, decompressed.
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// posthog (JSON lines), amplitude (Export API zip), mixpanel, segment (gzip),
        /// rudderstack (gzip), ga4 (JSON lines), snowplow (enriched TSV); `all` runs each.
        #[arg(long, default_value = "posthog")]
        format: String,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Scratch folder (default: a folder under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Every target of issue 18 in one run, each beside a peer where there is one: import
    /// (DuckDB's reader), model, incremental model (a full rebuild), drop → first funnel, peak
    /// memory, funnel, retention, a timeline page, PII scan and redacted export, workspace
    /// size, and every other vendor's import. The goals are stated for 10M events.
    Targets {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Events imported after the model is built, for the incremental pass (default: 1%).
        #[arg(long)]
        update: Option<usize>,
        /// Events per other vendor's export (0 skips them).
        #[arg(long, default_value_t = 1_000_000)]
        vendor_events: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Larger than memory: generate N PostHog events (100M by default) gzipped, in parts of
    /// distinct users, then import, model and answer a funnel and a retention with DuckDB held
    /// to --memory-limit-mb. Prints each stage's time, peak memory and spill, the workspace's
    /// size and the least free disk. Checks free disk first, cancels the running stage if the
    /// disk runs short, and deletes everything it made.
    Scale {
        #[arg(long, default_value_t = 100_000_000)]
        events: usize,
        /// Events per generated part (each part has its own users).
        #[arg(long, default_value_t = 5_000_000)]
        part: usize,
        #[arg(long, default_value_t = 4096)]
        memory_limit_mb: u64,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Import N generated events (as --files exports), then time a full model rebuild:
    /// identity, shared devices, sessions, persons. Prints each stage and peak memory.
    /// With --update M, then import M more events and time the incremental model pass beside
    /// a full rebuild of the same data.
    Rebuild {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        files: usize,
        #[arg(long, default_value_t = 0)]
        update: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // `stitchbook persons ws | head`: a closed pipe ends the output quietly, as other tools
    // do (exit status 141, as if by SIGPIPE), instead of a panic report.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, EngineError> {
    serde_json::to_string_pretty(v).map_err(|e| EngineError::Internal(e.to_string()))
}

fn run(cli: Cli) -> Result<ExitCode, EngineError> {
    match cli.command {
        Command::Import {
            workspace,
            paths,
            format,
            mapping,
            keep_raw,
            json,
        } => {
            let opts = ImportOptions {
                format: format.as_deref().map(FormatOverride::parse).transpose()?,
                mapping: mapping.as_deref().map(ColumnMapping::load).transpose()?,
                keep_raw,
                ..ImportOptions::default()
            };
            let ws = opened(Workspace::open(&workspace)?)?;
            let tty = std::io::stderr().is_terminal();
            let ctx = JobCtx::new(move |ev| progress(ev, tty), CancelToken::new());
            let report = import_paths(&ws, &paths, &opts, &ctx)?;
            if tty {
                eprint!("\r\x1b[2K");
            }
            if json {
                println!("{}", to_json(&report)?);
            } else {
                print_import_table(&report);
            }
            let failed = report
                .files
                .iter()
                .any(|f| f.status == ImportStatus::Failed);
            if !report.cancelled && model::is_stale(&ws)? {
                let r = model::refresh(&ws, &ctx)?;
                if tty {
                    eprint!("\r\x1b[2K");
                }
                if !json {
                    print_rebuild_line(&r);
                }
            }
            Ok(if report.cancelled {
                ExitCode::from(130)
            } else if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Info {
            workspace,
            json,
            top,
        } => {
            if !workspace.exists() {
                return Err(EngineError::unreadable(&workspace, "no such workspace"));
            }
            let ws = opened(Workspace::open(&workspace)?)?;
            let info = workspace_info(&ws, top)?;
            if json {
                println!("{}", to_json(&info)?);
            } else {
                print_info(&info);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Persons {
            workspace,
            search,
            limit,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            let rows = person::search(&ws, search.as_deref(), limit)?;
            if json {
                println!("{}", to_json(&rows)?);
            } else {
                print_persons(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Person {
            workspace,
            id,
            explain,
            to,
            sessions,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            if let Some(to) = to {
                let chain = person::chain(&ws, &id, &to)?;
                if json {
                    println!("{}", to_json(&chain)?);
                } else {
                    match chain {
                        Some(steps) => print_chain(&id, &steps),
                        None => println!("{id} and {to} are not joined by any applied link"),
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let d = person::detail(&ws, &id, explain, sessions)?;
            if json {
                println!("{}", to_json(&d)?);
            } else {
                print_person(&d);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sessions {
            workspace,
            person: who,
            limit,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            let pid = match &who {
                Some(id) => Some(person::person_of(&ws, id)?.ok_or_else(|| {
                    EngineError::InvalidArgument(format!("no person has the id \"{id}\""))
                })?),
                None => None,
            };
            let rows = person::sessions(&ws, pid.as_deref(), limit)?;
            if json {
                println!("{}", to_json(&rows)?);
            } else {
                print_sessions(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Timeline {
            workspace,
            id,
            session,
            offset,
            limit,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            let pid = person::person_of(&ws, &id)?.ok_or_else(|| {
                EngineError::InvalidArgument(format!("no person has the id \"{id}\""))
            })?;
            let page = model::timeline::page(&ws, &pid, session.as_deref(), offset, limit, true)?;
            if json {
                println!("{}", to_json(&page)?);
            } else {
                println!(
                    "  {} events of {} ({} sessions), showing {}–{}",
                    page.total,
                    page.person_id,
                    page.sessions.len(),
                    page.offset,
                    page.offset + page.events.len() as i64
                );
                for e in &page.events {
                    if e.session_start {
                        println!("  ── session {}", e.session_id.as_deref().unwrap_or("-"));
                    }
                    let gap = e.gap_s.map(duration).unwrap_or_default();
                    println!(
                        "  {:>6}  {}  {:>8}  {:<28}  {}",
                        e.index,
                        tf().iso(&e.ts_utc),
                        gap,
                        truncate(&e.event, 28),
                        e.page.as_deref().unwrap_or("")
                    );
                    for m in &e.merges {
                        println!("          ⇄ {m}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            workspace,
            event,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            match event {
                Some(name) => {
                    let p = stitchbook_engine::catalog::event_properties(&ws, &name)?;
                    if json {
                        println!("{}", to_json(&p)?);
                    } else {
                        println!(
                            "  {} — {} events, properties read from the latest {}",
                            p.event, p.total, p.sampled
                        );
                        println!(
                            "  {:<32}  {:<20}  {:>6}  EXAMPLES",
                            "PROPERTY", "TYPES", "FILL"
                        );
                        for s in &p.properties {
                            let types: Vec<String> =
                                s.types.iter().map(|t| t.0.to_lowercase()).collect();
                            println!(
                                "  {:<32}  {:<20}  {:>5.1}%  {}",
                                truncate(&s.key, 32),
                                truncate(&types.join(","), 20),
                                s.fill_rate * 100.0,
                                s.examples
                                    .iter()
                                    .map(|x| truncate(x, 24))
                                    .collect::<Vec<_>>()
                                    .join(" | ")
                            );
                        }
                    }
                }
                None => {
                    let rows = stitchbook_engine::catalog::events(&ws)?;
                    if json {
                        println!("{}", to_json(&rows)?);
                    } else {
                        println!(
                            "  {:<32}  {:>10}  {:>8}  {:>7}  {:<23}  {:<23}",
                            "EVENT", "EVENTS", "PERSONS", "% PERS", "FIRST SEEN", "LAST SEEN"
                        );
                        for r in &rows {
                            println!(
                                "  {:<32}  {:>10}  {:>8}  {:>6.1}%  {:<23}  {:<23}",
                                truncate(&r.name, 32),
                                r.events,
                                r.persons,
                                r.person_share * 100.0,
                                tf().iso(&r.first_seen),
                                tf().iso(&r.last_seen)
                            );
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Quality { workspace, json } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            let issues = stitchbook_engine::catalog::quality_remembered(&ws)?;
            if json {
                println!("{}", to_json(&issues)?);
            } else if issues.is_empty() {
                println!("  no data-quality issues found");
            } else {
                for i in &issues {
                    println!("  [{}] {}: {}", i.severity, i.title, i.detail);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            out,
            sample_data,
            force,
        } => {
            let dir = sample_data.unwrap_or_else(stitchbook_engine::demo::source_sample_data);
            let tty = std::io::stderr().is_terminal();
            let ctx = JobCtx::new(move |ev| progress(ev, tty), CancelToken::new());
            let ws = stitchbook_engine::demo::build(&dir, &out, force, &ctx)?;
            if tty {
                eprint!("\r\x1b[2K");
            }
            print_info(&workspace_info(&ws, 10)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild { workspace, json } => {
            let ws = open_existing(&workspace)?;
            let tty = std::io::stderr().is_terminal();
            let ctx = JobCtx::new(move |ev| progress(ev, tty), CancelToken::new());
            let r = model::rebuild(&ws, &ctx)?;
            if tty {
                eprint!("\r\x1b[2K");
            }
            if json {
                println!("{}", to_json(&r)?);
            } else {
                print_rebuild_line(&r);
                for s in &r.stages {
                    println!("  {:<20} {:>7.2} s", s.stage, s.secs);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Settings {
            workspace,
            set,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let mut model_changed = false;
            for kv in &set {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    EngineError::InvalidArgument(format!("--set takes key=value, not \"{kv}\""))
                })?;
                if resources::RESOURCE_KEYS.contains(&k.trim()) {
                    ResourceSettings::set(&ws, k.trim(), v)?;
                } else if k.trim() == insights::now::SETTING {
                    insights::now::NowMode::set(&ws, v)?;
                } else {
                    ModelSettings::set(&ws, k.trim(), v)?;
                    model_changed = true;
                }
            }
            let res = ResourceSettings::load(&ws)?;
            let rebuilt = if !model_changed {
                None
            } else {
                model::ensure_built(&ws, &JobCtx::silent())?
            };
            let settings = ModelSettings::load(&ws)?;
            let now_mode = insights::now::NowMode::load(&ws)?;
            if json {
                println!(
                    "{}",
                    to_json(
                        &serde_json::json!({ "model": settings, "insights": { "now": now_mode }, "resources": res })
                    )?
                );
            } else {
                println!(
                    "identity.mode                {}",
                    settings.identity_mode.as_str()
                );
                println!(
                    "sessions.timeout_seconds     {}",
                    settings.session_timeout_seconds
                );
                println!(
                    "sessions.max_length_seconds  {}",
                    settings.session_max_length_seconds
                );
                println!(
                    "sessions.split_at_midnight   {}",
                    settings.split_at_midnight
                );
                println!(
                    "sessions.split_on_campaign   {}",
                    settings.split_on_campaign
                );
                println!("time_zone                    {}", settings.time_zone);
                println!("week_start                   {}", settings.week_start);
                println!("insights.now                 {}", now_mode.as_str());
                let chosen = |v: Option<u64>| v.map_or("default".to_string(), |n| n.to_string());
                println!(
                    "duckdb.memory_limit_mb       {} (in effect: {})",
                    chosen(res.memory_limit_mb),
                    res.effective_memory_limit
                );
                println!(
                    "duckdb.threads               {} (in effect: {})",
                    chosen(res.threads),
                    res.effective_threads
                );
                println!(
                    "sql.timeout_seconds          {}",
                    res.sql_timeout_seconds.map_or(
                        format!("default ({} s)", resources::DEFAULT_SQL_TIMEOUT_SECONDS),
                        |n| n.to_string()
                    )
                );
                if let Some(r) = rebuilt {
                    print_rebuild_line(&r);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            workspace,
            query,
            saved,
            save_as,
            now,
            explain,
            json,
            png,
            svg,
            title,
        } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            let q = match (&query, &saved) {
                (Some(path), _) => read_query(path)?,
                (None, Some(name)) => insights::saved::load_to_run(&ws, name)?,
                (None, None) => {
                    return Err(EngineError::InvalidArgument(
                        "give --query FILE or --saved NAME".into(),
                    ))
                }
            };
            let answer =
                insights::answer(&ws, &q, given_now(&ws, now.as_deref())?, wall_clock_us()?)?;
            if let Some(name) = &save_as {
                insights::saved::save(&ws, name, &q, now_micros(&ws, None)?)?;
                eprintln!("saved insight \"{name}\"");
            }
            let title = title.unwrap_or_else(|| match (&query, &saved) {
                (_, Some(name)) => name.clone(),
                (Some(path), _) => path
                    .file_stem()
                    .map(|s| s.to_string_lossy().replace('_', " "))
                    .unwrap_or_default(),
                _ => String::new(),
            });
            for path in png.iter().chain(svg.iter()) {
                stitchbook_engine::chart::render(
                    &answer.result,
                    &title,
                    path,
                    stitchbook_engine::chart::SIZE,
                )?;
                eprintln!("wrote {}", path.display());
            }
            let r = &answer.result;
            if json {
                println!("{}", to_json(&answer)?);
            } else {
                println!("  {}", answer.as_of.label);
                for w in &answer.warnings {
                    println!("  warning: {w}");
                }
                match r {
                    insights::InsightResult::Funnel(f) => print_funnel(f, explain),
                    insights::InsightResult::Retention(t) => print_retention(t, explain),
                    insights::InsightResult::Trends(t) => {
                        print!("  {:<10}", "PERIOD");
                        for s in &t.series {
                            print!("  {:>24}", truncate(&s.label, 24));
                        }
                        println!();
                        for (i, d) in t.dates.iter().enumerate() {
                            print!("  {d:<10}");
                            for s in &t.series {
                                print!("  {:>24}", number(s.values[i]));
                            }
                            println!();
                        }
                        for n in &t.notes {
                            println!("  note: {n}");
                        }
                        if explain {
                            println!("-- {:.1} ms\n{}", t.millis, t.sql.join("\n"));
                        }
                    }
                    insights::InsightResult::Stickiness(t) => {
                        println!("  {:>8}  PERSONS", "PERIODS");
                        for (i, n) in t.persons.iter().enumerate() {
                            println!("  {:>8}  {n}", i + 1);
                        }
                        if explain {
                            println!("-- {:.1} ms\n{}", t.millis, t.sql);
                        }
                    }
                    insights::InsightResult::Paths(t) => {
                        println!("  {} paths of {} persons", t.total_paths, t.total_persons);
                        println!(
                            "  {:<28}  {:<28}  {:>7}  {:>7}  {:>7}",
                            "FROM", "TO", "PATHS", "PERSONS", "% PERS"
                        );
                        for e in &t.edges {
                            println!(
                                "  {:<28}  {:<28}  {:>7}  {:>7}  {:>6.1}%",
                                truncate(&e.source, 28),
                                truncate(&e.target, 28),
                                e.paths,
                                e.persons,
                                e.person_share * 100.0
                            );
                        }
                        for n in &t.notes {
                            println!("  note: {n}");
                        }
                        if explain {
                            println!("-- {:.1} ms\n{}", t.millis, t.sql);
                        }
                    }
                    insights::InsightResult::Lifecycle(t) => {
                        println!(
                            "  {:<10}  {:>6}  {:>9}  {:>12}  {:>7}",
                            "PERIOD", "NEW", "RETURNING", "RESURRECTING", "DORMANT"
                        );
                        for p in &t.periods {
                            println!(
                                "  {:<10}  {:>6}  {:>9}  {:>12}  {:>7}",
                                p.date, p.new, p.returning, p.resurrecting, p.dormant
                            );
                        }
                        if explain {
                            println!("-- {:.1} ms\n{}", t.millis, t.sql);
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Drill {
            workspace,
            query,
            cell,
            now,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            fresh_model(&ws)?;
            let q = read_query(&query)?;
            let rows = insights::drill(&ws, &q, as_of(&ws, now.as_deref())?.now_us, &cell)?;
            if json {
                println!("{}", to_json(&rows)?);
            } else {
                print_persons(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Insight { which } => {
            match which {
                InsightCommand::List { workspace, json } => {
                    let ws = open_existing(&workspace)?;
                    let list = insights::saved::list(&ws)?;
                    if json {
                        println!("{}", to_json(&list)?);
                    } else {
                        println!("{:<32}  KIND", "INSIGHT");
                        for i in &list {
                            let kind = serde_json::to_value(&i.query)
                                .ok()
                                .and_then(|v| v["kind"].as_str().map(str::to_string))
                                .unwrap_or_default();
                            println!("{:<32}  {kind}", truncate(&i.name, 32));
                        }
                        if list.is_empty() {
                            println!("(no saved insights; save one with `stitchbook run … --save-as NAME`)");
                        }
                    }
                }
                InsightCommand::Show { workspace, name } => {
                    let ws = open_existing(&workspace)?;
                    println!("{}", to_json(&insights::saved::load(&ws, &name)?)?);
                }
                InsightCommand::Delete { workspace, name } => {
                    let ws = open_existing(&workspace)?;
                    if !insights::saved::delete(&ws, &name)? {
                        return Err(EngineError::InvalidQuery {
                            code: "unknown_saved_insight",
                            message: format!("no saved insight is named \"{name}\""),
                        });
                    }
                    println!("deleted insight \"{name}\"");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cohort { which } => {
            use insights::cohort;
            match which {
                CohortCommand::Save {
                    workspace,
                    name,
                    definition,
                } => {
                    let ws = open_existing(&workspace)?;
                    let text = std::fs::read_to_string(&definition)
                        .map_err(|e| EngineError::io(&definition, e))?;
                    let def: cohort::CohortDef =
                        serde_json::from_str(&text).map_err(|e| EngineError::InvalidQuery {
                            code: "cohort_definition",
                            message: format!("{}: {e}", definition.display()),
                        })?;
                    fresh_model(&ws)?;
                    let at = as_of(&ws, None)?;
                    // Evaluate once so a broken definition is refused before it is saved.
                    let n = cohort::member_ids(&ws, &def, at.now_us)?.len();
                    cohort::save(&ws, &name, &def, now_micros(&ws, None)?)?;
                    println!("saved cohort \"{name}\" ({n} members {})", at.label);
                }
                CohortCommand::List {
                    workspace,
                    now,
                    json,
                } => {
                    let ws = open_existing(&workspace)?;
                    fresh_model(&ws)?;
                    let at = as_of(&ws, now.as_deref())?;
                    let now = at.now_us;
                    let list = cohort::list(&ws)?;
                    if json {
                        println!("{}", to_json(&list)?);
                    } else {
                        println!("  members {}", at.label);
                        println!("{:<32}  {:>8}  DEFINITION", "COHORT", "MEMBERS");
                        for c in &list {
                            let n = cohort::member_ids(&ws, &c.definition, now)?.len();
                            println!(
                                "{:<32}  {:>8}  {}",
                                truncate(&c.name, 32),
                                n,
                                serde_json::to_string(&c.definition).unwrap_or_default()
                            );
                        }
                        if list.is_empty() {
                            println!("(no saved cohorts; save one with `stitchbook cohort save`)");
                        }
                    }
                }
                CohortCommand::Members {
                    workspace,
                    name,
                    now,
                    csv,
                    json,
                } => {
                    let ws = open_existing(&workspace)?;
                    fresh_model(&ws)?;
                    let rows = cohort::members(&ws, &name, as_of(&ws, now.as_deref())?.now_us)?;
                    if let Some(path) = csv {
                        std::fs::write(&path, cohort::members_csv(&rows)?)
                            .map_err(|e| EngineError::io(&path, e))?;
                        eprintln!("wrote {} members to {}", rows.len(), path.display());
                    } else if json {
                        println!("{}", to_json(&rows)?);
                    } else {
                        print_persons(&rows);
                    }
                }
                CohortCommand::Delete { workspace, name } => {
                    let ws = open_existing(&workspace)?;
                    if !cohort::delete(&ws, &name)? {
                        return Err(EngineError::InvalidQuery {
                            code: "unknown_cohort",
                            message: format!("no saved cohort is named \"{name}\""),
                        });
                    }
                    println!("deleted cohort \"{name}\"");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sql {
            workspace,
            statement,
            limit,
            timeout,
            json,
            csv,
        } => {
            let ws = opened(Workspace::open_read_only(&workspace)?)?;
            let timeout = match timeout {
                Some(0) => {
                    return Err(EngineError::InvalidArgument(
                        "--timeout takes a whole number of seconds, at least 1".into(),
                    ))
                }
                Some(s) => std::time::Duration::from_secs(s),
                None => resources::sql_timeout(&ws)?,
            };
            let t = stitchbook_engine::console::run(
                &ws,
                &statement,
                limit,
                timeout,
                &CancelToken::new(),
            )?;
            if json {
                println!("{}", to_json(&t)?);
            } else if csv {
                let mut w = csv::Writer::from_writer(std::io::stdout());
                let io = |e: csv::Error| EngineError::InvalidArgument(format!("writing CSV: {e}"));
                w.write_record(&t.columns).map_err(io)?;
                for r in &t.rows {
                    w.write_record(r.iter().map(|v| v.as_deref().unwrap_or("")))
                        .map_err(io)?;
                }
                w.flush()
                    .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
            } else {
                print_table(&t);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            workspace,
            import,
            limit,
            json,
        } => {
            let ws = opened(Workspace::open(&workspace)?)?;
            let rows = stitchbook_engine::info::quarantine_rows(&ws, import, limit)?;
            if json {
                println!("{}", to_json(&rows)?);
            } else {
                for r in &rows {
                    println!(
                        "#{} {}:{}  {}",
                        r.import_id, r.source_file, r.source_line, r.reason
                    );
                    println!(
                        "    {}{}",
                        r.raw,
                        if r.truncated { " …(truncated)" } else { "" }
                    );
                }
                if rows.is_empty() {
                    println!("no quarantined records");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate {
            events,
            format,
            seed,
            duplicates,
            malformed,
            start,
            out,
        } => {
            let opts = GenerateOptions {
                events,
                seed,
                duplicate_rate: duplicates,
                malformed_rate: malformed,
                start_us: date_to_micros(&start)?,
                person_offset: 0,
            };
            let targets: Vec<(GenFormat, PathBuf)> = if format == "all" {
                std::fs::create_dir_all(&out).map_err(|e| EngineError::io(&out, e))?;
                GenFormat::ALL
                    .iter()
                    .map(|f| (*f, out.join(f.default_file_name())))
                    .collect()
            } else {
                vec![(GenFormat::parse(&format)?, out)]
            };
            for (f, path) in targets {
                let truth = write_generated(f, &path, &opts)?;
                println!(
                    "wrote {} ({} lines: {} records, {} duplicates, {} malformed; {} persons after identity merges)",
                    path.display(),
                    truth.lines,
                    truth.records,
                    truth.duplicates_injected,
                    truth.malformed_injected,
                    truth.resolved_persons
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pii { which } => run_pii(which),
        Command::Bench {
            which:
                BenchCommand::Pii {
                    events,
                    dir,
                    workspace,
                    json,
                },
        } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("stitchbook-bench"));
            if workspace.is_none() {
                eprintln!(
                    "generating and importing {events} events in {} ...",
                    dir.display()
                );
            }
            let r = stitchbook_engine::bench::bench_pii(
                &dir,
                events,
                wall_clock_us()?,
                workspace.as_deref(),
            )?;
            if json {
                println!("{}", to_json(&r)?);
            } else {
                println!("events           {}", r.events);
                println!("import           {:.1} s", r.import_secs);
                println!(
                    "scan             {:.2} s  ({:.0} events/s)",
                    r.scan_secs, r.events_per_sec
                );
                println!(
                    "values checked   {}  ({:.0} values/s)",
                    r.values_checked, r.values_per_sec
                );
                println!("findings         {}", r.findings);
                println!(
                    "RSS              {:.0} MB at the start, {:.0} MB peak",
                    r.rss_before_scan_mb, r.peak_rss_mb
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            which:
                BenchCommand::Insights {
                    events,
                    files,
                    dir,
                    json,
                },
        } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("stitchbook-bench"));
            eprintln!(
                "preparing a workspace of {events} events in {} (reused when present) ...",
                dir.display()
            );
            let r = stitchbook_engine::bench::bench_insights(&dir, events, files)?;
            if json {
                println!("{}", to_json(&r)?);
            } else {
                println!("events                 {}", r.events);
                println!("persons                {}", r.persons);
                println!(
                    "prepare                {:.1} s{}",
                    r.prepare_secs,
                    if r.reused { " (reused)" } else { "" }
                );
                let width = r.timings.iter().map(|t| t.name.chars().count()).max();
                for t in &r.timings {
                    println!(
                        "  {:<w$} {:>6.0} ms  (goal {:>5.0} ms{})  {}",
                        t.name,
                        t.millis,
                        t.goal_millis,
                        if t.millis <= t.goal_millis {
                            ", met"
                        } else {
                            ", missed"
                        },
                        t.answer,
                        w = width.unwrap_or(0)
                    );
                }
                println!("peak RSS               {:.0} MB", r.peak_rss_mb);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            which:
                BenchCommand::Targets {
                    events,
                    update,
                    vendor_events,
                    dir,
                    json,
                },
        } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("stitchbook-bench"));
            eprintln!(
                "measuring every target on {events} generated PostHog events in {} ...",
                dir.display()
            );
            let r = stitchbook_engine::bench::targets::bench_targets(
                &dir,
                events,
                update.unwrap_or(events / 100),
                vendor_events,
            )?;
            if json {
                println!("{}", to_json(&r)?);
            } else {
                println!(
                    "{} events, {} persons, {:.2} GB of JSON lines (goals are for 10M events)",
                    r.events,
                    r.persons,
                    r.file_bytes as f64 / 1e9
                );
                println!("| work | Stitchbook | peer, same run | peer / Stitchbook | goal | met |");
                println!("|---|---|---|---|---|---|");
                for row in &r.rows {
                    println!(
                        "| {} | {} | {} | {} | {} | {} |",
                        row.work,
                        row.ours,
                        row.peer.as_deref().unwrap_or("–"),
                        row.ratio.map_or("–".to_string(), |x| format!("{x:.2}")),
                        row.target,
                        match row.met {
                            Some(true) => "yes",
                            Some(false) => "no",
                            None => "–",
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            which:
                BenchCommand::Scale {
                    events,
                    part,
                    memory_limit_mb,
                    dir,
                    json,
                },
        } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("stitchbook-bench"));
            eprintln!(
                "{events} generated PostHog events, DuckDB memory limit {memory_limit_mb} MB, in {} ...",
                dir.display()
            );
            let r = stitchbook_engine::bench::scale::bench_scale(
                &dir,
                events,
                part,
                memory_limit_mb,
                &|s| {
                    eprintln!(
                        "  {}: {:.1} s, peak {:.0} MB, spill {:.0} MB: {}",
                        s.stage, s.secs, s.peak_rss_mb, s.peak_temp_mb, s.outcome
                    )
                },
            )?;
            if json {
                println!("{}", to_json(&r)?);
            } else {
                println!(
                    "{} events in {} gzip parts ({:.2} GB), {} persons, DuckDB memory limit {} MB",
                    r.events,
                    r.parts,
                    r.gzip_bytes as f64 / 1e9,
                    r.persons,
                    r.memory_limit_mb
                );
                println!("| stage | time | peak memory | most spill on disk | outcome |");
                println!("|---|---|---|---|---|");
                for s in &r.stages {
                    println!(
                        "| {} | {:.1} s | {:.0} MB | {:.0} MB | {} |",
                        s.stage, s.secs, s.peak_rss_mb, s.peak_temp_mb, s.outcome
                    );
                }
                println!(
                    "import + model + funnel + retention: {:.1} s; {}",
                    r.total_secs,
                    if r.completed {
                        "completed"
                    } else {
                        "NOT completed"
                    }
                );
                println!(
                    "workspace {:.2} GB; least free disk {:.1} GB",
                    r.workspace_bytes as f64 / 1e9,
                    r.min_free_bytes as f64 / 1e9
                );
            }
            Ok(if r.completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Bench {
            which:
                BenchCommand::Rebuild {
                    events,
                    files,
                    update,
                    dir,
                    json,
                },
        } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("stitchbook-bench"));
            eprintln!(
                "generating and importing {events} events as {files} file(s) in {} ...",
                dir.display()
            );
            let r = stitchbook_engine::bench::bench_rebuild(&dir, events, files, update)?;
            if json {
                println!("{}", to_json(&r)?);
            } else {
                println!("events                 {}", r.events);
                println!(
                    "import                 {:.1} s ({} files)",
                    r.import_secs, r.files
                );
                print_rebuild_line(&r.report);
                println!("rebuild                {:.2} s", r.rebuild_secs);
                for s in &r.report.stages {
                    println!("  {:<20} {:>7.2} s", s.stage, s.secs);
                }
                println!("peak RSS, rebuild      {:.0} MB", r.peak_rss_rebuild_mb);
                if let Some(u) = &r.update {
                    println!("import +{} events      {:.1} s", u.events, u.import_secs);
                    print_rebuild_line(&u.report);
                    println!(
                        "incremental model      {:.2} s ({} persons recomputed); full rebuild of the same data {:.2} s ({:.1}x)",
                        u.update_secs,
                        u.report.persons_touched,
                        u.full_rebuild_secs,
                        u.full_rebuild_secs / u.update_secs.max(1e-9)
                    );
                    for s in &u.report.stages {
                        println!("  {:<20} {:>7.2} s", s.stage, s.secs);
                    }
                    println!("peak RSS, update       {:.0} MB", u.peak_rss_update_mb);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            which:
                BenchCommand::Import {
                    events,
                    format,
                    seed,
                    dir,
                    json,
                },
        } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("stitchbook-bench"));
            let formats: Vec<GenFormat> = if format == "all" {
                GenFormat::ALL.to_vec()
            } else {
                vec![GenFormat::parse(&format)?]
            };
            for f in formats {
                eprintln!(
                    "generating {events} {} events in {} ...",
                    f.as_str(),
                    dir.display()
                );
                let r = stitchbook_engine::bench::bench_import(&dir, f, events, seed)?;
                if json {
                    println!("{}", to_json(&r)?);
                } else {
                    println!("format                 {} ({})", r.format, r.file_name);
                    println!("events                 {}", r.events);
                    println!("file size              {:.1} MB", r.file_bytes as f64 / 1e6);
                    println!(
                        "stitchbook import      {:.2} s  {:.0} events/s  {:.1} MB/s",
                        r.import_secs, r.import_events_per_sec, r.import_mb_per_sec
                    );
                    println!(
                        "duckdb reader          {:.2} s  {:.0} events/s (decompressed data)",
                        r.duckdb_read_json_secs, r.duckdb_events_per_sec
                    );
                    println!(
                        "ratio to duckdb        {:.2} (goal >= {})",
                        r.ratio_to_duckdb,
                        if f == GenFormat::PostHog {
                            "0.8"
                        } else {
                            "0.7"
                        }
                    );
                    if let Some(t) = r.duckdb_typed_secs {
                        println!(
                            "duckdb typed reader    {t:.2} s  (columns and types given; ratio {:.2})",
                            t / r.import_secs
                        );
                    }
                    if let Some(t) = r.sql_mapping_secs {
                        println!(
                            "import, SQL mapping    {t:.2} s  (the Rust fast path off; {:.1}x slower)",
                            t / r.import_secs
                        );
                    }
                    println!("peak RSS, import       {:.0} MB", r.peak_rss_import_mb);
                    println!("peak RSS, read_json    {:.0} MB", r.peak_rss_duckdb_mb);
                    println!(
                        "loaded/dup/quarantined {}/{}/{}",
                        r.loaded, r.duplicates, r.quarantined
                    );
                    println!("import steps:");
                    for s in &r.steps {
                        println!("  {:<18} {:>7.2} s", s.step, s.secs);
                    }
                    println!();
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_query(path: &std::path::Path) -> Result<insights::Query, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EngineError::InvalidQuery {
        code: "query_json",
        message: format!("{}: {e}", path.display()),
    })
}

/// The current time in microseconds since 1970: the CLI is where the clock is read;
/// analytics code only receives `now`.
fn wall_clock_us() -> Result<i64, EngineError> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
    Ok(d.as_micros() as i64)
}

/// `--now` as µs since 1970, if given.
fn given_now(ws: &Workspace, now: Option<&str>) -> Result<Option<i64>, EngineError> {
    now.map(|t| now_micros(ws, Some(t))).transpose()
}

/// `now` for analytics: `--now`, else the end of the data or the clock as the workspace's
/// insights.now setting says.
fn as_of(ws: &Workspace, now: Option<&str>) -> Result<insights::now::AsOf, EngineError> {
    insights::now::resolve(ws, given_now(ws, now)?, wall_clock_us()?)
}

/// `--now`, or the current time (for records: when something was saved, reviewed, …).
fn now_micros(ws: &Workspace, now: Option<&str>) -> Result<i64, EngineError> {
    let text = match now {
        Some(t) => t.to_string(),
        None => return wall_clock_us(),
    };
    let v: Option<i64> = ws.conn().query_row(
        "SELECT epoch_us(TRY_CAST(? AS TIMESTAMPTZ))",
        [&text],
        |r| r.get(0),
    )?;
    v.ok_or_else(|| EngineError::InvalidArgument(format!("--now \"{text}\" is not a date-time")))
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn secs(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}s")).unwrap_or_else(|| "-".into())
}

fn print_retention(r: &insights::retention::RetentionResult, explain: bool) {
    print_retention_table(&r.cohorts, &r.mean_simple, &r.mean_weighted);
    for b in &r.breakdown {
        println!("\n  — {}", b.value);
        print_retention_table(&b.cohorts, &b.mean_simple, &b.mean_weighted);
    }
    println!("\n  (· = period not complete yet)");
    for n in &r.notes {
        println!("  note: {n}");
    }
    if explain {
        println!("-- {:.1} ms\n{}", r.millis, r.sql);
    }
}

fn print_retention_table(
    cohorts: &[insights::retention::CohortRow],
    mean_simple: &[Option<f64>],
    mean_weighted: &[Option<f64>],
) {
    let n = mean_simple.len();
    print!("  {:<10} {:>6}", "COHORT", "SIZE");
    for k in 0..n {
        print!(" {:>7}", format!("P{k}"));
    }
    println!();
    for c in cohorts {
        print!("  {:<10} {:>6}", c.label, c.size);
        for v in &c.values {
            match v {
                Some(v) if c.size > 0 => print!(" {:>6.1}%", *v as f64 * 100.0 / c.size as f64),
                Some(_) => print!(" {:>7}", "0"),
                None => print!(" {:>7}", "·"),
            }
        }
        println!();
    }
    print!("  {:<10} {:>6}", "mean", "");
    for m in mean_simple {
        print!(" {:>7}", pct(*m));
    }
    println!();
    print!("  {:<10} {:>6}", "weighted", "");
    for m in mean_weighted {
        print!(" {:>7}", pct(*m));
    }
    println!();
}

fn print_funnel(f: &insights::funnel::FunnelResult, explain: bool) {
    let noun = f.count.noun().to_uppercase();
    let table = |steps: &[insights::funnel::StepResult]| {
        println!(
            "  {:<4} {:<28} {:>8} {:>9} {:>9} {:>10} {:>10}",
            "STEP", "EVENT", noun, "OVERALL", "FROM PREV", "AVG TIME", "MEDIAN"
        );
        for s in steps {
            let name = if s.optional {
                format!("{} (optional)", s.name)
            } else {
                s.name.clone()
            };
            println!(
                "  {:<4} {:<28} {:>8} {:>9} {:>9} {:>10} {:>10}",
                s.index + 1,
                truncate(&name, 28),
                s.count,
                pct(s.conversion_overall),
                pct(s.conversion_from_previous),
                secs(s.average_time_s),
                secs(s.median_time_s)
            );
        }
    };
    println!("funnel");
    table(&f.steps);
    for b in &f.breakdown {
        println!(
            "breakdown: {}",
            if b.value.is_empty() {
                "(none)"
            } else {
                &b.value
            }
        );
        table(&b.steps);
    }
    if !f.time_to_convert.bins.is_empty() {
        println!(
            "time to convert (average {}):",
            secs(f.time_to_convert.average_s)
        );
        for (start, n) in &f.time_to_convert.bins {
            println!("  from {start:>9.0}s  {n}");
        }
    }
    if let Some(t) = &f.trends {
        println!(
            "conversion from step {} to step {} by entry {} (drill: --cell period:N:converted|dropped|entered):",
            t.from_step + 1,
            t.to_step + 1,
            format!("{:?}", t.interval).to_lowercase()
        );
        println!(
            "  {:<4} {:<10} {:>8} {:>9} {:>9}",
            "N", "PERIOD", "ENTERED", "CONVERTED", "RATE"
        );
        let rows = |periods: &[insights::funnel::FunnelTrendPeriod]| {
            for (i, p) in periods.iter().enumerate() {
                println!(
                    "  {:<4} {:<10} {:>8} {:>9} {:>9}{}",
                    i,
                    p.date,
                    p.entered,
                    p.converted,
                    pct(p.conversion_rate),
                    if p.complete { "" } else { "  (incomplete)" }
                );
            }
        };
        rows(&t.periods);
        for b in &t.breakdown {
            println!(
                "  breakdown: {} (drill: --cell period:N:converted@{})",
                if b.value.is_empty() {
                    "(none)"
                } else {
                    &b.value
                },
                b.value
            );
            rows(&b.periods);
        }
    }
    for n in &f.notes {
        println!("note: {n}");
    }
    if explain {
        println!("-- {:.1} ms\n{}", f.millis, f.sql);
    }
}

/// Bring a stale model up to date before a query, saying so on stderr (never silently: on a
/// big workspace it takes a while).
fn fresh_model(ws: &Workspace) -> Result<(), EngineError> {
    if let Some(why) = model::staleness(ws)? {
        eprintln!("{}: updating persons and sessions first…", why.message());
        let r = model::refresh(ws, &JobCtx::silent())?;
        eprintln!(
            "model: {} persons, {} sessions ({})",
            r.persons,
            r.sessions,
            if r.incremental {
                "updated for the new imports"
            } else {
                "rebuilt"
            }
        );
    }
    Ok(())
}

fn open_existing(path: &std::path::Path) -> Result<Workspace, EngineError> {
    if !path.exists() {
        return Err(EngineError::unreadable(path, "no such workspace"));
    }
    opened(Workspace::open(path)?)
}

/// How this run shows times: the opened workspace's time zone (set once, on open).
static TIME_FORMAT: std::sync::OnceLock<stitchbook_engine::timefmt::TimeFormat> =
    std::sync::OnceLock::new();

fn opened(ws: Workspace) -> Result<Workspace, EngineError> {
    let tf = stitchbook_engine::timefmt::TimeFormat::for_workspace(&ws)?;
    let _ = TIME_FORMAT.set(tf);
    Ok(ws)
}

/// A time in the one readable format, `2024-01-02 13:15:33 UTC`, in the workspace zone.
fn tf() -> stitchbook_engine::timefmt::TimeFormat {
    TIME_FORMAT.get().cloned().unwrap_or_default()
}

fn print_rebuild_line(r: &model::RebuildReport) {
    let secs: f64 = r.stages.iter().map(|s| s.secs).sum();
    let how = if r.incremental {
        format!(
            "updated for the new imports ({} persons recomputed) in {secs:.2} s",
            r.persons_touched
        )
    } else {
        format!("rebuilt in {secs:.2} s")
    };
    println!(
        "model ({} mode): {} persons ({} identified), {} merges applied, {} refused, {} shared devices, {} sessions; {how}",
        r.settings.identity_mode.as_str(),
        r.persons,
        r.identified_persons,
        r.merges_applied,
        r.merges_refused,
        r.shared_devices,
        r.sessions,
    );
}

fn day_time(ts: &Option<String>) -> String {
    tf().opt(ts.as_deref())
}

fn print_table(t: &stitchbook_engine::console::SqlTable) {
    let cell = |v: &Option<String>| -> String {
        truncate(&v.as_deref().unwrap_or("NULL").replace('\n', " "), 60)
    };
    let widths: Vec<usize> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            t.rows
                .iter()
                .map(|r| cell(&r[i]).chars().count())
                .chain(std::iter::once(c.chars().count().min(60)))
                .max()
                .unwrap_or(1)
        })
        .collect();
    let line = |vals: Vec<String>| {
        let parts: Vec<String> = vals
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(t.columns.iter().map(|c| truncate(c, 60)).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in &t.rows {
        line(r.iter().map(cell).collect());
    }
    println!(
        "({} row{}{}; {:.1} ms)",
        t.rows.len(),
        if t.rows.len() == 1 { "" } else { "s" },
        if t.truncated {
            ", more not shown: raise --limit"
        } else {
            ""
        },
        t.millis
    );
}

fn print_persons(rows: &[person::PersonSummary]) {
    println!(
        "{:<36}  {:<28}  {:<30}  {:>4}  {:>7}  {:>8}  LAST SEEN",
        "PERSON", "NAME", "EMAIL", "IDS", "EVENTS", "SESSIONS"
    );
    for p in rows {
        println!(
            "{:<36}  {:<28}  {:<30}  {:>4}  {:>7}  {:>8}  {}{}",
            p.person_id,
            truncate(p.display_name.as_deref().unwrap_or("-"), 28),
            truncate(p.email.as_deref().unwrap_or("-"), 30),
            p.distinct_ids,
            p.events,
            p.sessions,
            day_time(&p.last_seen),
            if p.shared_device {
                "  shared device"
            } else {
                ""
            }
        );
    }
    if rows.is_empty() {
        println!("(no persons match)");
    }
}

fn print_chain(start: &str, steps: &[person::ExplainStep]) {
    if steps.is_empty() {
        println!("{start}: the same id");
    }
    for s in steps {
        let l = &s.link;
        println!(
            "{} → {}  via {} {} → {} at {}{}",
            s.via,
            s.id,
            l.kind,
            l.from_id,
            l.into_id,
            day_time(&l.ts_utc),
            match (&l.source_file, l.source_line) {
                (Some(f), Some(n)) => format!("  ({f}:{n})"),
                _ => String::new(),
            }
        );
    }
}

fn print_person(d: &person::PersonDetail) {
    let p = &d.person;
    println!("person     {}", p.person_id);
    println!("name       {}", p.display_name.as_deref().unwrap_or("-"));
    println!("email      {}", p.email.as_deref().unwrap_or("-"));
    println!(
        "status     {}{}",
        if p.is_identified {
            "identified"
        } else {
            "anonymous"
        },
        if p.shared_device {
            ", uses a shared device"
        } else {
            ""
        }
    );
    println!(
        "seen       {} → {}  ({} events, {} sessions)",
        day_time(&p.created_at),
        day_time(&p.last_seen),
        p.events,
        p.sessions
    );
    println!("ids ({})   {}", d.ids.len(), d.ids.join(", "));
    if let Some(props) = d.properties.as_ref().and_then(|v| v.as_object()) {
        println!("properties");
        for (k, v) in props {
            println!("  {k:<24} {}", truncate(&v.to_string(), 80));
        }
    }
    if !d.merges.is_empty() {
        println!("merges");
        for m in &d.merges {
            println!(
                "  {}  {:<16} {} → {}{}",
                day_time(&m.ts_utc),
                m.kind,
                m.from_id,
                m.into_id,
                match (&m.source_file, m.source_line) {
                    (Some(f), Some(n)) => format!("  ({f}:{n})"),
                    _ => String::new(),
                }
            );
        }
    }
    if let Some(steps) = &d.explain {
        println!("how each id joined, from {}", d.asked);
        for s in steps {
            println!(
                "  {} joined {} through {} {} → {} at {}{}",
                s.id,
                s.via,
                s.link.kind,
                s.link.from_id,
                s.link.into_id,
                day_time(&s.link.ts_utc),
                match (&s.link.source_file, s.link.source_line) {
                    (Some(f), Some(n)) => format!("  ({f}:{n})"),
                    _ => String::new(),
                }
            );
        }
        if steps.is_empty() {
            println!("  {} is this person's only linked id", d.asked);
        }
    }
    if !d.warnings.is_empty() {
        println!("warnings");
        for w in &d.warnings {
            println!("  ! {w}");
        }
    }
    if !d.sessions.is_empty() {
        println!("sessions (newest first)");
        print_sessions(&d.sessions);
    }
}

fn print_sessions(rows: &[person::SessionRow]) {
    println!(
        "  {:<23}  {:>8}  {:>6}  {:>5}  {:<6}  {:<9}  ENTRY → EXIT",
        "STARTED", "DURATION", "EVENTS", "PAGES", "BOUNCE", "SOURCE"
    );
    for s in rows {
        println!(
            "  {:<23}  {:>7}s  {:>6}  {:>5}  {:<6}  {:<9}  {} → {}",
            day_time(&Some(s.started_at.clone())),
            s.duration_s,
            s.events,
            s.pageviews,
            match s.is_bounce {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            s.source,
            truncate(s.entry_url.as_deref().unwrap_or("-"), 40),
            truncate(s.exit_url.as_deref().unwrap_or("-"), 40)
        );
    }
    if rows.is_empty() {
        println!("  (no sessions)");
    }
}

fn progress(ev: &JobEvent, tty: bool) {
    if !tty {
        return;
    }
    if let JobEvent::Progress {
        file,
        phase,
        bytes_done,
        bytes_total,
        rows,
        ..
    } = ev
    {
        let frac = if *bytes_total > 0 {
            *bytes_done as f64 / *bytes_total as f64
        } else {
            0.0
        };
        let width = 24;
        let filled = ((frac * width as f64).round() as usize).min(width);
        let name = std::path::Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r\x1b[2K[{}{}] {:>3.0}% {phase:<13} {rows:>10} rows  {name}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            frac * 100.0
        );
        let _ = err.flush();
    }
}

fn print_import_table(r: &stitchbook_engine::ingest::ImportReport) {
    println!(
        "{:<42} {:<12} {:<8} {:>9} {:>9} {:>9} {:>9}  STATUS",
        "FILE", "VENDOR", "FORMAT", "READ", "LOADED", "DUPS", "QUAR"
    );
    for f in &r.files {
        let name = std::path::Path::new(&f.path)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| f.path.clone());
        let fmt = match (&f.container, &f.compression) {
            (Some(c), Some(z)) if z != "none" => {
                format!("{c}.{}", if z == "gzip" { "gz" } else { z })
            }
            (Some(c), _) => c.clone(),
            _ => "-".into(),
        };
        println!(
            "{:<42} {:<12} {:<8} {:>9} {:>9} {:>9} {:>9}  {}",
            truncate(&name, 42),
            f.vendor.as_deref().unwrap_or("-"),
            fmt,
            f.rows_read,
            f.rows_loaded,
            f.rows_duplicate,
            f.rows_quarantined,
            f.status.as_str()
        );
        if let Some(m) = &f.message {
            println!("    {m}");
        }
    }
    let (read, loaded, dup, quar) = r.totals();
    println!(
        "{:<42} {:<12} {:<8} {:>9} {:>9} {:>9} {:>9}",
        format!("TOTAL ({} files)", r.files.len()),
        "",
        "",
        read,
        loaded,
        dup,
        quar
    );
    if quar > 0 {
        println!("quarantined records: stitchbook quarantine <workspace>");
    }
    if r.cancelled {
        println!("cancelled: files not listed were not imported");
    }
}

/// A chart value: whole numbers as such, others with 2 decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

fn print_info(i: &stitchbook_engine::info::WorkspaceInfo) {
    println!("workspace      {}", i.path);
    println!("schema         v{}", i.schema_version);
    println!("events         {}", i.total_events);
    println!("distinct ids   {}", i.distinct_ids);
    println!("identity links {}", i.identity_links);
    println!("quarantined    {}", i.quarantined);
    println!(
        "date range     {} .. {}",
        tf().opt(i.first_event.as_deref()),
        tf().opt(i.last_event.as_deref())
    );
    println!("\nevents by vendor");
    for v in &i.by_vendor {
        println!("  {:<14} {:>10}", v.vendor, v.events);
    }
    println!("\ntop events");
    for e in &i.top_events {
        println!("  {:<32} {:>10}", truncate(&e.event_name, 32), e.events);
    }
    if !i.quarantine_reasons.is_empty() {
        println!("\nquarantine reasons");
        for q in &i.quarantine_reasons {
            println!("  {:>8}  {}", q.rows, q.reason);
        }
    }
    println!("\nimports");
    println!(
        "  {:>4} {:<10} {:<11} {:>9} {:>9} {:>7} {:>7}  {:<23} PATH",
        "ID", "STATUS", "VENDOR", "READ", "LOADED", "DUPS", "QUAR", "FINISHED"
    );
    for m in &i.imports {
        println!(
            "  {:>4} {:<10} {:<11} {:>9} {:>9} {:>7} {:>7}  {:<23} {}",
            m.import_id,
            m.status,
            m.vendor.as_deref().unwrap_or("-"),
            m.rows_read,
            m.rows_loaded,
            m.rows_duplicate,
            m.rows_quarantined,
            tf().opt(m.finished_at.as_deref()),
            m.path
        );
        // Why a file did not complete (failed, cancelled, interrupted by a crash).
        if let Some(msg) = m.message.as_ref().filter(|_| m.status != "complete") {
            println!("       {msg}");
        }
    }
}

/// A gap as the timeline shows it: `+4s`, `+2m 05s`, `+3h 10m`, `+2d 4h`.
fn duration(s: f64) -> String {
    let t = s.max(0.0).round() as i64;
    if t < 60 {
        format!("+{t}s")
    } else if t < 3600 {
        format!("+{}m {:02}s", t / 60, t % 60)
    } else if t < 86_400 {
        format!("+{}h {:02}m", t / 3600, (t % 3600) / 60)
    } else {
        format!("+{}d {}h", t / 86_400, (t % 86_400) / 3600)
    }
}

fn run_pii(which: PiiCommand) -> Result<ExitCode, EngineError> {
    use stitchbook_engine::pii;
    let progress_ctx = || {
        let tty = std::io::stderr().is_terminal();
        JobCtx::new(move |ev| progress(ev, tty), CancelToken::new())
    };
    match which {
        PiiCommand::Scan { workspace, json } => {
            let ws = open_existing(&workspace)?;
            let r = pii::scan(&ws, now_micros(&ws, None)?, &progress_ctx())?;
            if std::io::stderr().is_terminal() {
                eprint!("\r\x1b[2K");
            }
            if json {
                println!("{}", to_json(&r)?);
            } else {
                println!(
                    "scanned {} events, {} persons, {} snapshots ({} values) in {:.2} s: {} findings",
                    r.totals.events,
                    r.totals.person_rows,
                    r.totals.snapshot_rows,
                    r.totals.values_checked,
                    r.millis / 1000.0,
                    r.findings.len()
                );
                print_findings(&pii::findings(&ws)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        PiiCommand::List {
            workspace,
            pending,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let mut all = pii::findings(&ws)?;
            if pending {
                all.retain(|f| f.needs_review);
            }
            if json {
                println!("{}", to_json(&all)?);
            } else {
                if pii::scan_info(&ws)?.is_none() {
                    println!("(no scan yet; run `stitchbook pii scan`)");
                }
                print_findings(&all);
            }
            Ok(ExitCode::SUCCESS)
        }
        PiiCommand::Review {
            workspace,
            finding,
            status,
            note,
            reviewer,
            at,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let status = pii::ReviewStatus::parse(&status)?;
            let at = now_micros(&ws, at.as_deref())?;
            let f = pii::review(&ws, &finding, status, &note, &reviewer, at)?;
            if json {
                println!("{}", to_json(&f)?);
            } else {
                println!(
                    "{} {} {}: {} by {}",
                    f.finding.id,
                    f.finding.path,
                    f.finding.detector,
                    status.as_str(),
                    reviewer
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PiiCommand::Events {
            workspace,
            finding,
            offset,
            limit,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let page = pii::finding_events(&ws, &finding, offset, limit)?;
            if json {
                println!("{}", to_json(&page)?);
            } else {
                println!(
                    "{} {} {}: {} events with hits; {}..{}{}",
                    page.finding_id,
                    page.path,
                    page.detector,
                    page.total,
                    page.offset,
                    page.offset + page.events.len() as i64,
                    if page.has_more { " (more)" } else { "" }
                );
                for e in &page.events {
                    println!(
                        "{:>12}  {}  {:<20}  {:<24}  {}:{}  {}",
                        e.event_seq,
                        e.ts,
                        e.event_name,
                        e.person_id
                            .as_deref()
                            .or(e.distinct_id.as_deref())
                            .unwrap_or("-"),
                        e.source_file,
                        e.source_line,
                        e.masked.join("  ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PiiCommand::Reveal {
            workspace,
            finding,
            event,
            reviewer,
            reason,
            at,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let at = now_micros(&ws, at.as_deref())?;
            let r = pii::reveal(&ws, &finding, event, &reviewer, &reason, at)?;
            if json {
                println!("{}", to_json(&r)?);
            } else {
                for v in &r.values {
                    println!("{v}");
                }
                eprintln!("(logged as reveal {})", r.log_seq);
            }
            Ok(ExitCode::SUCCESS)
        }
        PiiCommand::RevealLog { workspace, json } => {
            let ws = open_existing(&workspace)?;
            let log = pii::reveal_log(&ws)?;
            if json {
                println!("{}", to_json(&log)?);
            } else {
                for x in &log {
                    println!(
                        "{}  {}  {}  {} {} event {}: {}",
                        x.seq,
                        tf().iso(&x.revealed_at),
                        x.reviewer,
                        x.finding_id,
                        x.path,
                        x.event_seq,
                        x.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PiiCommand::Export {
            workspace,
            rules,
            out,
            format,
            vendor_shape,
            quarantine,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let rules = pii::RedactionRules::load(&rules)?;
            let format = match format {
                Some(f) => pii::ExportFormat::parse(&f)?,
                None if vendor_shape => pii::ExportFormat::Jsonl,
                None => rules.format.unwrap_or(pii::ExportFormat::Parquet),
            };
            let opts = pii::ExportOptions {
                out_dir: out,
                format,
                keep_from_us: None,
                salt: None,
                now_us: now_micros(&ws, None)?,
                vendor_shape,
                include_quarantine: quarantine,
            };
            let r = pii::export(&ws, &rules, &opts, &progress_ctx())?;
            print_export(&r, json)
        }
        PiiCommand::Report {
            workspace,
            out,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let r = pii::audit_report(&ws, now_micros(&ws, None)?)?;
            let files = pii::write_report(&r, &out)?;
            if json {
                println!("{}", to_json(&files)?);
            } else {
                for f in files {
                    println!("wrote {}", f.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PiiCommand::Rule { which } => match which {
            PiiRuleCommand::Add {
                workspace,
                name,
                pattern,
                severity,
            } => {
                let ws = open_existing(&workspace)?;
                let severity = pii::Severity::parse(&severity).ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "severity is low, medium or high, not \"{severity}\""
                    ))
                })?;
                let rule = pii::CustomRule {
                    name,
                    pattern,
                    severity,
                };
                pii::rules::save(&ws, &rule, now_micros(&ws, None)?)?;
                println!("saved rule \"{}\" (applies from the next scan)", rule.name);
                Ok(ExitCode::SUCCESS)
            }
            PiiRuleCommand::List { workspace, json } => {
                let ws = open_existing(&workspace)?;
                let rules = pii::rules::list(&ws)?;
                if json {
                    println!("{}", to_json(&rules)?);
                } else {
                    println!("{:<24}  {:<8}  PATTERN", "RULE", "SEVERITY");
                    for r in &rules {
                        println!("{:<24}  {:<8}  {}", r.name, r.severity.as_str(), r.pattern);
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            PiiRuleCommand::Delete { workspace, name } => {
                let ws = open_existing(&workspace)?;
                if pii::rules::delete(&ws, &name)? {
                    println!("deleted rule \"{name}\"");
                    Ok(ExitCode::SUCCESS)
                } else {
                    Err(EngineError::InvalidArgument(format!("no rule \"{name}\"")))
                }
            }
        },
        PiiCommand::Retention {
            workspace,
            before,
            export,
            rules,
            format,
            json,
        } => {
            let ws = open_existing(&workspace)?;
            let cutoff = if before.len() == 10 {
                date_to_micros(&before)?
            } else {
                now_micros(&ws, Some(&before))?
            };
            let summary = pii::older_than(&ws, cutoff)?;
            let Some(out) = export else {
                if json {
                    println!("{}", to_json(&summary)?);
                } else {
                    print_data_retention(&summary);
                }
                return Ok(ExitCode::SUCCESS);
            };
            let rules = match rules {
                Some(p) => pii::RedactionRules::load(&p)?,
                None => pii::RedactionRules::default(),
            };
            let opts = pii::ExportOptions {
                out_dir: out,
                format: pii::ExportFormat::parse(&format)?,
                keep_from_us: Some(cutoff),
                salt: None,
                now_us: now_micros(&ws, None)?,
                vendor_shape: false,
                include_quarantine: false,
            };
            let r = pii::export(&ws, &rules, &opts, &progress_ctx())?;
            if !json {
                print_data_retention(&summary);
            }
            print_export(&r, json)
        }
    }
}

fn print_findings(all: &[stitchbook_engine::pii::ReviewedFinding]) {
    println!(
        "  {:<12}  {:<6}  {:<40}  {:<14}  {:>7}  {:>7}  {:>7}  {:<22}  REVIEW",
        "ID", "SEV", "PATH", "DETECTOR", "HITS", "%EVENTS", "%PERS", "SAMPLE"
    );
    for f in all {
        let x = &f.finding;
        let path = x.path.clone();
        let review = match (&f.review, f.needs_review) {
            (Some(r), false) => r.status.as_str().to_string(),
            (Some(r), true) => format!("{} (hits changed: review again)", r.status.as_str()),
            (None, _) => "needs review".into(),
        };
        println!(
            "  {:<12}  {:<6}  {:<40}  {:<14}  {:>7}  {:>6.1}%  {:>6.1}%  {:<22}  {}",
            x.id,
            x.severity.as_str(),
            truncate(&path, 40),
            truncate(&x.detector, 14),
            x.hits,
            x.event_share * 100.0,
            x.person_share * 100.0,
            truncate(x.samples.first().map(String::as_str).unwrap_or(""), 22),
            review
        );
    }
}

fn print_export(
    r: &stitchbook_engine::pii::ExportReport,
    json: bool,
) -> Result<ExitCode, EngineError> {
    use stitchbook_engine::pii::ExportStatus;
    if json {
        println!("{}", to_json(r)?);
    } else {
        println!(
            "wrote {} ({} of {} rows{}); verification: {}",
            r.data_file,
            r.rows_written,
            r.rows_source,
            if r.keep_from.is_some() {
                format!(", {} older events left out", r.rows_left_out)
            } else {
                String::new()
            },
            match r.status {
                ExportStatus::Complete => "clean",
                ExportStatus::Failed => "FAILED",
            }
        );
        for c in &r.checks {
            println!(
                "  {:<40}  {:<12}  {:>7} redacted  {:>5} hits after  {:>5} of {} values left  {}",
                truncate(&c.target, 40),
                format!("{:?}", c.action).to_lowercase(),
                c.redacted,
                c.hits_after,
                c.values_after,
                c.values,
                if c.ok { "ok" } else { "NOT CLEAN" }
            );
        }
        for x in &r.remaining {
            println!(
                "  left: {} line {} at {}: {} ({})",
                x.file, x.line, x.path, x.sample, x.target
            );
        }
        for p in &r.problems {
            println!("  problem: {p}");
        }
        for n in &r.notes {
            println!("  note: {n}");
        }
    }
    Ok(match r.status {
        ExportStatus::Complete => ExitCode::SUCCESS,
        ExportStatus::Failed => ExitCode::from(1),
    })
}

fn print_data_retention(s: &stitchbook_engine::pii::RetentionSummary) {
    println!(
        "{} events before {} ({} kept)",
        s.older,
        tf().iso(&s.cutoff),
        s.kept
    );
    for f in &s.by_file {
        println!(
            "  {:<12}  {:>8}  {} .. {}  {}",
            f.vendor,
            f.events,
            tf().opt(f.first_event.as_deref()),
            tf().opt(f.last_event.as_deref()),
            f.file
        );
    }
}
