//! Tables in kubectl's look: upper-case headers, no borders, three spaces between columns.

use comfy_table::{Cell, ContentArrangement, Table};

/// Renders `rows` under `headers`, every line without trailing spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            headers
                .iter()
                .map(|header| Cell::new(header.to_uppercase())),
        );
    for row in rows {
        table.add_row(row.iter().map(Cell::new));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_without_borders() {
        let text = super::render(
            &["name", "phase"],
            &[
                vec!["a".into(), "Running".into()],
                vec!["longer".into(), "Failed".into()],
            ],
        );
        assert_eq!(text, "NAME     PHASE\na        Running\nlonger   Failed\n");
    }
}
