//! `tallytree`: the command line for units, provincial staff and auditors.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tallytree_proto::RegionCode;

use tallytree_cli::{
    audit,
    conn::{Conn, Refused},
    demo, enrol, evidence, findings, import, init, keys, query,
    query::Format,
    record, root, token,
};

/// Which records a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SheetKind {
    /// Dispute cases: id, category, registered_on, state, closed_on, deadline.
    Cases,
    /// Governance tasks: id, title, deadline, state.
    Tasks,
}

impl From<SheetKind> for tallytree_node::sheet::Kind {
    fn from(k: SheetKind) -> Self {
        match k {
            SheetKind::Cases => tallytree_node::sheet::Kind::Cases,
            SheetKind::Tasks => tallytree_node::sheet::Kind::Tasks,
        }
    }
}

/// Signed, federated dispute-resolution statistics.
#[derive(Parser, Debug)]
#[command(name = "tallytree", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a unit's signing key and node config in a directory.
    Init {
        /// The unit's 12-digit region code.
        #[arg(long)]
        code: RegionCode,
        /// The unit's Chinese name, e.g. 普兰店区.
        #[arg(long)]
        name: String,
        /// Directory for node.key, node.pub, node.toml and data/ (default: ./CODE).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Address the node will listen on.
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        /// Name of the first operator credential (its token goes to operator.token).
        #[arg(long, default_value = "operator")]
        operator_name: String,
        /// The parent node's gRPC URL, e.g. https://10.0.0.2:7400 (none for the top unit).
        #[arg(long)]
        parent: Option<String>,
        /// A host name or IP address clients reach this node by (repeatable;
        /// localhost and the loopback addresses are always named).
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// Serve without TLS: only for trying things on one machine (loopback only).
        #[arg(long)]
        plaintext: bool,
        /// Address of the web console (default: the port after --listen's).
        #[arg(long)]
        console_listen: Option<SocketAddr>,
    },
    /// The top unit's root of trust: sign version 1, rotate, show (needs --config).
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
    /// Named credentials of a node: operator, reader, auditor (needs --config).
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Import a CSV file of cases or tasks (all rows or none, unless --skip-invalid).
    Import {
        /// cases or tasks.
        kind: SheetKind,
        /// UTF-8 CSV with a header row.
        file: PathBuf,
        /// Store the valid rows and report the refused ones.
        #[arg(long)]
        skip_invalid: bool,
        /// Check every row; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Record one case, task, or directly entered figures.
    Record {
        #[command(subcommand)]
        entry: record::Entry,
    },
    /// Show figures for a period: YYYY-MM, YYYY-Qn, YYYY or FROM..TO.
    Query {
        /// Region code (default: the node's own unit).
        #[arg(long)]
        region: Option<RegionCode>,
        /// The period.
        #[arg(long)]
        period: String,
        /// Drill down this many levels (0 = the region only).
        #[arg(long, default_value_t = 0)]
        depth: u32,
        /// One row per month.
        #[arg(long)]
        by_month: bool,
        /// Print JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
    },
    /// Figures that need checking (需核实) in the node's subtree: missing and
    /// late reports, proportions too good, outliers, flat lines and more
    /// (docs/FINDINGS.md).
    Findings {
        /// Only findings about this region and the units below it.
        #[arg(long)]
        region: Option<RegionCode>,
        /// Only findings whose period overlaps this one (YYYY-MM, YYYY-Qn,
        /// YYYY or FROM..TO).
        #[arg(long, default_value = "")]
        period: String,
        /// Only this rule (e.g. siblings.too_good_resolution).
        #[arg(long, default_value = "")]
        rule: String,
        /// Only warnings (重点核实): `warning`; every finding: `notice`.
        #[arg(long, default_value = "")]
        severity: String,
        /// Print JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
    },
    /// At a parent: enrol a child's public key (again with a new key: rotation).
    Enrol {
        /// The child's 12-digit code.
        #[arg(long)]
        code: RegionCode,
        /// The child's Chinese name.
        #[arg(long)]
        name: String,
        /// The child's public file: its node.pub, or node.key.next.pub after
        /// rotate-key (its public key and TLS certificate request).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the enrolment file for the child.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// At a child: install the enrolment file the parent wrote.
    InstallEnrolment {
        /// The enrolment file.
        file: PathBuf,
    },
    /// At a child: create the next key (node.key.next); have the parent enrol
    /// node.key.next.pub, then install that enrolment to switch keys.
    RotateKey,
    /// At a parent: revoke a child's key; its later summaries are refused.
    Revoke {
        /// The child's 12-digit code.
        #[arg(long)]
        code: RegionCode,
        /// The child's public key file.
        #[arg(long)]
        key: PathBuf,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Run a whole five-level federation (47 node processes) on loopback.
    Demo {
        /// Directory holding tallytree-node (default: beside this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Keep the federation running after the walk-through, until Ctrl-C,
        /// SIGTERM or SIGHUP.
        #[arg(long)]
        keep_running: bool,
        /// Keep data and logs in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Seed of the generated figures.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Five units, one per level, instead of 47 (for tests of the demo).
        #[arg(long, hide = true)]
        small: bool,
    },
    /// Keys of a unit.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Auditing: signed revisions and their signatures.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
enum RootCommand {
    /// Sign root version 1 with its keys (default: the node's key) and install it.
    Init {
        /// A private key file of the root (repeatable; all sign).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// How many of the keys must sign the next root.
        #[arg(long)]
        threshold: Option<u32>,
        /// Days until the root may no longer be the latest (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
        /// Where to write the root (the file auditors pin).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Sign the next root with a threshold of the current root's keys and all of its own, and install it.
    Rotate {
        /// A private key file of the current root (repeatable).
        #[arg(long = "sign-with", required = true)]
        sign_with: Vec<PathBuf>,
        /// A private key file of the new root (repeatable; default: keep the current keys).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// How many of the new keys must sign the next root.
        #[arg(long)]
        threshold: Option<u32>,
        /// The public key the node is to sign with (e.g. node.key.next.pub after rotate-key).
        #[arg(long)]
        node_key: Option<PathBuf>,
        /// Days until the root may no longer be the latest (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
        /// Where to write the new root.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Print a root file, verified by its own keys.
    Show {
        /// The root file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Print the public key and key id.
    Show {
        /// A private key file (PKCS#8 PEM).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Write the trust anchor file (the top unit's public key) for auditors.
    ExportAnchor {
        /// Output file, e.g. anchor.pub.
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// List every signed revision of a region's summary for a month.
    Revisions {
        /// Region code (default: the node's own unit).
        #[arg(long)]
        region: Option<RegionCode>,
        /// The month, YYYY-MM.
        #[arg(long)]
        period: String,
        /// The unit's public key file, to verify each signature.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print each revision as a standard DSSE JSON envelope, one per line.
        #[arg(long)]
        dsse_json: bool,
    },
    /// Export the evidence bundle of a region and period from a node.
    Export {
        /// Region code (default: the node's own unit).
        #[arg(long)]
        region: Option<RegionCode>,
        /// A month, quarter, year or range.
        #[arg(long)]
        period: String,
        /// Output file.
        #[arg(long, short)]
        output: PathBuf,
        /// bundle (for `audit verify`) or dsse-json (for any DSSE verifier).
        #[arg(long, value_enum, default_value = "bundle")]
        format: evidence::ExportFormat,
    },
    /// Verify evidence bundles offline with the trust anchor only.
    /// Exit code 0 = verified, 1 = integrity problems, 2 = unreadable.
    Verify {
        /// Bundle files (a village's own export adds its receipts).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The trust anchor file (tallytree keys export-anchor).
        #[arg(long)]
        trust: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// List every region, not only those with problems.
        #[arg(long)]
        all: bool,
    },
    /// Fetch the proof that a unit's signed figures are counted at this node.
    Prove {
        /// The unit (e.g. a village) to prove.
        #[arg(long)]
        region: RegionCode,
        /// The month, YYYY-MM.
        #[arg(long)]
        period: String,
        /// Output file.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Verify an inclusion proof offline with the trust anchor only.
    VerifyProof {
        /// The proof file.
        file: PathBuf,
        /// The trust anchor file.
        #[arg(long)]
        trust: PathBuf,
    },
}

/// Ends the process quietly, with the status a shell gives a process ended
/// by SIGPIPE (141), when standard output is a pipe whose reader is gone
/// (`tallytree ... | head`), instead of a panic's message. SIGPIPE itself
/// stays ignored, as Rust sets it: a network write to a closed connection
/// must be an error the command reports, not the end of the process.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The node refused the request: exit 1, as for refused rows.
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let conn = cli.conn;
    match cli.command {
        Command::Init {
            code,
            name,
            dir,
            listen,
            operator_name,
            parent,
            server_names,
            plaintext,
            console_listen,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(code.to_string()));
            let made = init::init(&init::InitArgs {
                code,
                name,
                dir,
                listen,
                operator_name: operator_name.clone(),
                parent,
                server_names,
                plaintext,
                console: console_listen,
            })?;
            let path = made.config;
            let dir = path.parent().unwrap_or(&path).display();
            println!(
                "initialised {code} in {dir}: signing key, TLS key and CA, credentials, config"
            );
            println!(
                "operator token ({operator_name}), shown once and kept in {dir}/{}:\n  {}",
                init::OPERATOR_TOKEN_FILE,
                made.operator_token
            );
            println!(
                "start the node:  tallytree-node --config {}",
                path.display()
            );
            println!(
                "then use it:     tallytree --config {} query --period YYYY-MM",
                path.display()
            );
            println!("for the parent:  give it {dir}/node.pub to enrol this unit");
            println!(
                "for clients:     give them {dir}/ca.pem (--ca-file) and a token (tallytree token add)"
            );
            if let Some(console) = tallytree_node::config::Config::load(&path)?.console.listen {
                let scheme = if plaintext { "http" } else { "https" };
                println!(
                    "web console:     {scheme}://{console}/ (browsers trust {dir}/ca.pem once imported; log in with a token)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => token::run(conn.config.as_deref(), command),
        Command::Root { command } => {
            let args = match command {
                RootCommand::Show { file } => {
                    root::print(&root::show(&file)?);
                    return Ok(ExitCode::SUCCESS);
                }
                RootCommand::Init {
                    keys,
                    threshold,
                    expires_days,
                    output,
                } => root::RootArgs {
                    keys,
                    sign_with: Vec::new(),
                    threshold,
                    node_key: None,
                    expires_days,
                    output,
                },
                RootCommand::Rotate {
                    sign_with,
                    keys,
                    threshold,
                    node_key,
                    expires_days,
                    output,
                } => root::RootArgs {
                    keys,
                    sign_with,
                    threshold,
                    node_key,
                    expires_days,
                    output,
                },
            };
            let view = root::sign_and_install(&conn, &args).await?;
            root::print(&view);
            println!(
                "installed at the node and written to {}",
                args.output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            kind,
            file,
            skip_invalid,
            dry_run,
        } => {
            import::run(
                &conn,
                &file,
                import::ImportOptions {
                    kind: kind.into(),
                    skip_invalid,
                    dry_run,
                },
            )
            .await
        }
        Command::Record { entry } => record::run(&conn, entry).await,
        Command::Query {
            region,
            period,
            depth,
            by_month,
            json,
            csv,
        } => {
            let format = Format::of(json, csv);
            query::run(
                &conn,
                query::QueryArgs {
                    region,
                    period,
                    depth,
                    by_month,
                    format,
                },
            )
            .await
        }
        Command::Findings {
            region,
            period,
            rule,
            severity,
            json,
            csv,
        } => {
            let format = Format::of(json, csv);
            findings::run(
                &conn,
                findings::FindingsArgs {
                    region,
                    period,
                    rule,
                    severity,
                    format,
                },
            )
            .await
        }
        Command::Demo {
            bin_dir,
            keep_running,
            dir,
            seed,
            small,
        } => {
            demo::run(demo::DemoArgs {
                bin_dir,
                keep_running,
                dir,
                seed,
                small,
            })
            .await
        }
        Command::Enrol {
            code,
            name,
            key,
            output,
        } => {
            let keys = enrol::ChildKeys::load(&key)?;
            let file = enrol::enrol(&conn, code, &name, &keys).await?;
            enrol::write_file(&output, &file)?;
            println!(
                "enrolled {name} ({code}), key {}, with its TLS certificate; give {} to the child",
                &keys.key.key_id()[..16],
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::InstallEnrolment { file } => {
            enrol::install(&conn, &enrol::EnrolmentFile::load(&file)?).await?;
            println!("enrolment installed; the node now pushes its summaries to its parent");
            Ok(ExitCode::SUCCESS)
        }
        Command::RotateKey => {
            let config = conn
                .config
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("rotate-key needs --config NODE.toml"))?;
            let (file, public) = enrol::rotate_key(config)?;
            println!(
                "next signing and TLS keys written beside the current ones; key id {}",
                public.key_id()
            );
            println!(
                "have the parent enrol {} (tallytree enrol --key ...), then install that enrolment here",
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke { code, key, reason } => {
            let key = tallytree_proto::PublicKey::load(&key)?;
            enrol::revoke(&conn, code, &key, &reason).await?;
            println!(
                "revoked key {} of {code}; its summaries issued from now on are refused",
                &key.key_id()[..16]
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::ExportAnchor { output },
        } => {
            let config = conn.config.as_deref().ok_or_else(|| {
                anyhow::anyhow!("export-anchor needs --config NODE.toml of the top unit")
            })?;
            enrol::export_anchor(config, &output)?;
            println!("trust anchor written to {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::Show { key },
        } => {
            keys::show(key.as_deref(), conn.config.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command } => match command {
            AuditCommand::Revisions {
                region,
                period,
                key,
                dsse_json,
            } => audit::revisions(&conn, region, &period, key.as_deref(), dsse_json).await,
            AuditCommand::Export {
                region,
                period,
                output,
                format,
            } => evidence::export(&conn, region, &period, &output, format).await,
            AuditCommand::Verify {
                files,
                trust,
                json,
                all,
            } => {
                let out = if json {
                    evidence::VerifyOutput::Json
                } else {
                    evidence::VerifyOutput::Table
                };
                evidence::verify(&files, &trust, out, all)
            }
            AuditCommand::Prove {
                region,
                period,
                output,
            } => evidence::prove(&conn, region, &period, &output).await,
            AuditCommand::VerifyProof { file, trust } => evidence::verify_proof_file(&file, &trust),
        },
    }
}
