//! `tallytree findings`: the figures that need checking (需核实) in the
//! node's subtree, as a table with Chinese names, JSON or CSV.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use tallytree_aggregator::findings::{Severity, format_value};
use tallytree_proto::{
    RegionCode,
    pb::{self, query_client::QueryClient},
};

use crate::{
    conn::{Conn, explain},
    query::Format,
    table::{Align, Table},
};

/// What to ask.
#[derive(Debug, Clone)]
pub struct FindingsArgs {
    /// Findings about this region and below; the whole subtree when empty.
    pub region: Option<RegionCode>,
    /// Period text; every period when empty.
    pub period: String,
    /// Rule id; every rule when empty.
    pub rule: String,
    /// Severity id; every severity when empty.
    pub severity: String,
    /// Output.
    pub format: Format,
}

/// Asks the node and prints.
pub async fn run(conn: &Conn, args: FindingsArgs) -> Result<ExitCode> {
    let mut client = QueryClient::new(conn.connect().await?).max_decoding_message_size(256 << 20);
    let response = client
        .findings(pb::FindingsRequest {
            region: args.region.map(|r| r.to_string()).unwrap_or_default(),
            period: args.period.clone(),
            rule: args.rule.clone(),
            severity: args.severity.clone(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&to_json(&response))?),
        Format::Csv => print!("{}", table(&response, true).to_csv()?),
        Format::Table => {
            if response.findings.is_empty() {
                println!("没有需核实的数据 (no findings)");
            } else {
                println!("{}", table(&response, false).render());
                println!(
                    "{} 条需核实 (findings), 规则版本 (rules) v{}",
                    response.findings.len(),
                    response.rules_version
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn severity_label(id: &str) -> &'static str {
    Severity::from_id(id).map_or("", Severity::label)
}

fn table(response: &pb::FindingsResponse, for_csv: bool) -> Table {
    let mut columns = vec![
        ("单位 (unit)", Align::Left),
        ("期间 (period)", Align::Left),
        ("需核实 (rule)", Align::Left),
        ("级别 (severity)", Align::Left),
        ("实际 (observed)", Align::Right),
        ("预期 (expected)", Align::Right),
        ("统计量 (statistic)", Align::Right),
        ("阈值 (threshold)", Align::Right),
        ("编号 (id)", Align::Left),
    ];
    if for_csv {
        columns.splice(
            0..1,
            [
                ("region", Align::Left),
                ("单位 (unit)", Align::Left),
                ("路径 (path)", Align::Left),
            ],
        );
        columns.extend([
            ("rule", Align::Left),
            ("statistic", Align::Left),
            ("related", Align::Left),
            ("sources", Align::Left),
        ]);
    }
    let mut table = Table::new(&columns);
    for f in &response.findings {
        let mut row = Vec::new();
        if for_csv {
            row.extend([f.region.clone(), f.name.clone(), f.path.clone()]);
        } else {
            let mut unit = f.path.clone();
            if !f.related.is_empty() {
                unit.push_str(&format!(" (= {})", f.related.join(", ")));
            }
            row.push(unit);
        }
        row.extend([
            f.period.clone(),
            f.label.clone(),
            severity_label(&f.severity).to_owned(),
            format_value(&f.measure, f.observed),
            format_value(&f.measure, f.expected),
            format_value(&f.statistic, f.value),
            format_value(&f.statistic, f.threshold),
            f.id.clone(),
        ]);
        if for_csv {
            row.extend([
                f.rule.clone(),
                f.statistic.clone(),
                f.related.join(";"),
                f.sources.join(";"),
            ]);
        }
        table.push(row);
    }
    table
}

fn to_json(response: &pb::FindingsResponse) -> Value {
    json!({
        "as_of_ms": response.as_of_ms,
        "rules_version": response.rules_version,
        "findings": response.findings.iter().map(|f| json!({
            "id": f.id,
            "rule": f.rule,
            "rule_version": f.rule_version,
            "label": f.label,
            "region": f.region,
            "name": f.name,
            "path": f.path,
            "period": f.period,
            "severity": f.severity,
            "measure": f.measure,
            "observed": f.observed,
            "expected": f.expected,
            "statistic": f.statistic,
            "value": f.value,
            "threshold": f.threshold,
            "related": f.related,
            "sources": f.sources,
        })).collect::<Vec<_>>(),
    })
}
