//! A table as every view has it: shown on the page, behind its chart,
//! exported as CSV and printed, from one value so the three always agree.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use maud::{Markup, html};

/// One cell: the text shown and exported, and how it is styled.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// As shown and exported.
    pub text: String,
    /// A CSS class (a status, "num").
    pub class: &'static str,
    /// A link, where the cell leads somewhere.
    pub href: Option<String>,
}

impl Cell {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            ..Cell::default()
        }
    }

    /// A figure, right-aligned.
    pub fn num(text: impl ToString) -> Cell {
        Cell {
            text: text.to_string(),
            class: "num",
            href: None,
        }
    }

    /// Text with a class.
    pub fn class(text: impl Into<String>, class: &'static str) -> Cell {
        Cell {
            text: text.into(),
            class,
            href: None,
        }
    }

    /// A link.
    pub fn link(text: impl Into<String>, href: String) -> Cell {
        Cell {
            text: text.into(),
            class: "",
            href: Some(href),
        }
    }
}

/// A table with an id (the CSV file's name), a caption and rows.
#[derive(Debug, Clone)]
pub struct Table {
    /// Used in URLs and file names, e.g. "units".
    pub id: &'static str,
    /// Shown above it.
    pub caption: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows; a row whose `href` is set leads one level down.
    pub rows: Vec<Row>,
}

/// One row.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The cells, one per column.
    pub cells: Vec<Cell>,
    /// Where a click on the row goes.
    pub href: Option<String>,
    /// A CSS class for the whole row.
    pub class: &'static str,
}

impl Table {
    /// An empty table.
    pub fn new(id: &'static str, caption: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            id,
            caption: caption.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn push(&mut self, cells: Vec<Cell>, href: Option<String>) {
        self.rows.push(Row {
            cells,
            href,
            class: "",
        });
    }

    /// The table on a page, with a CSV link per table (`csv_base` is the
    /// view's path; the table's id and the view's query are appended).
    pub fn render(&self, csv: Option<(&str, &str)>, words: &super::lang::Words) -> Markup {
        html! {
            figure.table id={ "t-" (self.id) } {
                figcaption {
                    span.caption { (self.caption) }
                    @if let Some((href, query)) = csv {
                        span.exports.noprint {
                            a.csv href={ (href) "/" (self.id) ".csv?" (query) } download { "CSV" }
                            " · "
                            a.csv href={ (href) "/" (self.id) ".csv?" (query) "&bom=1" } download { (words.csv_excel) }
                        }
                    }
                }
                div.scroll {
                    table id=(self.id) {
                        thead { tr { @for c in &self.columns { th scope="col" { (c) } } } }
                        tbody {
                            @for r in &self.rows {
                                tr class=(r.class) data-href=[r.href.as_deref()] {
                                    @for (i, c) in r.cells.iter().enumerate() {
                                        @let href = c.href.as_deref().or(if i == 0 { r.href.as_deref() } else { None });
                                        td class=(c.class) {
                                            @if let Some(h) = href { a href=(h) { (c.text) } } @else { (c.text) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The table as CSV: a header row, then the rows, as shown. With
    /// `bom`, a UTF-8 byte order mark first (Excel on Chinese Windows reads
    /// UTF-8 only then).
    pub fn to_csv(&self, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        let mut w = csv::Writer::from_writer(out);
        let _ = w.write_record(&self.columns);
        for r in &self.rows {
            let _ = w.write_record(r.cells.iter().map(|c| c.text.as_str()));
        }
        w.into_inner().unwrap_or_default()
    }

    /// A CSV download of the table, named `<prefix>-<id>.csv`.
    pub fn csv_response(&self, prefix: &str, bom: bool) -> Response {
        csv_download(&format!("{prefix}-{}.csv", self.id), self.to_csv(bom))
    }
}

/// A CSV file download.
pub fn csv_download(name: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_the_shown_text_and_an_optional_bom() {
        let mut t = Table::new("units", "下级单位", &["单位", "化解率"]);
        t.push(vec![Cell::text("大连市"), Cell::num("—")], None);
        t.push(vec![Cell::text("沈阳市, 铁西"), Cell::num("90.0%")], None);
        let plain = String::from_utf8(t.to_csv(false)).expect("utf-8");
        assert_eq!(plain, "单位,化解率\n大连市,—\n\"沈阳市, 铁西\",90.0%\n");
        let bom = t.to_csv(true);
        assert!(bom.starts_with(&[0xEF, 0xBB, 0xBF]));
        assert_eq!(&bom[3..], plain.as_bytes());
    }
}
