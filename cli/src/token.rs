//! `tallytree token add|list|revoke --config NODE.toml`: a node's named
//! credentials, in its credentials file (hashes only). A running node reads
//! the file again at its next call: a new token works, a revoked one stops
//! working, without a restart.

use std::{path::Path, process::ExitCode};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use tallytree_node::{
    access::{Credentials, Role},
    config::Config,
};

use crate::{
    init::now_rfc3339,
    table::{Align, Table},
};

/// What `token` does.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a credential; its token is printed once and stored nowhere.
    Add {
        /// operator (records, enrolment), reader (Query) or auditor (Query, evidence, proofs).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who holds it, e.g. 省厅统计科.
        #[arg(long)]
        name: String,
    },
    /// List the credentials (names, roles, when made; never tokens).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a credential by name; calls with its token are refused from the next one on.
    Revoke {
        /// The credential's name.
        #[arg(long)]
        name: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s}: not a role (operator, reader or auditor)"))
}

/// Runs a `token` command on the node whose config is `config`.
pub fn run(config: Option<&Path>, command: TokenCommand) -> Result<ExitCode> {
    let Some(config) = config else {
        bail!("token needs --config NODE.toml (it edits that node's credentials file)");
    };
    let config = Config::load(config)?;
    let file = &config.access.credentials_file;
    let mut creds = Credentials::load(file)?;
    match command {
        TokenCommand::Add { role, name } => {
            let token = creds.add(&name, role, &now_rfc3339())?;
            creds.save(file)?;
            eprintln!(
                "added {role} credential {}; its token (shown once, store it safely):",
                name.trim()
            );
            println!("{token}");
        }
        TokenCommand::List { json } => {
            if json {
                let rows: Vec<_> = creds
                    .list()
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name,
                            "role": c.role,
                            "created": c.created,
                            "token_sha256": c.token_sha256,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut t = Table::new(&[
                    ("名称 name", Align::Left),
                    ("角色 role", Align::Left),
                    ("创建 created", Align::Left),
                    ("SHA-256", Align::Left),
                ]);
                for c in creds.list() {
                    t.push(vec![
                        c.name.clone(),
                        c.role.to_string(),
                        c.created.clone(),
                        c.token_sha256.chars().take(16).collect(),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        TokenCommand::Revoke { name } => {
            if !creds.revoke(&name) {
                bail!("--name {name}: no such credential (tallytree token list shows them)");
            }
            creds
                .save(file)
                .with_context(|| format!("{}: cannot write", file.display()))?;
            println!("revoked credential {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
