//! The result table: every figure beside its baseline, ratio and goal, as Markdown.

use super::Figure;

/// The figures as a Markdown table.
pub fn table(figures: &[Figure]) -> String {
    let mut out =
        String::from("| measure | value | baseline | ratio | goal | baseline is |\n|---|---:|---:|---:|---|---|\n");
    for f in figures {
        if let Some(why) = &f.skipped {
            out.push_str(&format!("| {} | {why} | – | – | – | {} |\n", f.name, f.baseline_is));
            continue;
        }
        let goal = match f.goal {
            None => "–".to_string(),
            Some(g) => match g.met(f) {
                Some(true) => format!("{}: met", g.describe()),
                Some(false) => format!("{}: **missed**", g.describe()),
                None => format!("{}: no figure", g.describe()),
            },
        };
        let ratio = if f.baseline > 0.0 {
            f.value / f.baseline
        } else {
            f64::NAN
        };
        out.push_str(&format!(
            "| {} | {:.3} {} | {:.3} {} | {:.2}{} | {goal} | {} |\n",
            f.name,
            f.value,
            f.unit,
            f.baseline,
            f.unit,
            ratio,
            if f.higher_is_better {
                " (higher is better)"
            } else {
                " (lower is better)"
            },
            f.baseline_is
        ));
    }
    out
}
