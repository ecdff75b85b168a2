//! Autonumber formats: `OF-{YYYY}-{seq:5}` -> `OF-2026-00042`.
//!
//! Tokens: `{YYYY}`, `{YY}`, `{MM}`, `{seq}` and `{seq:N}` (zero-padded to N digits).
//! The counter restarts when the date part of the number changes (per year with `{YYYY}`,
//! per month with `{MM}`), so the *period* is the format rendered without the sequence.

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Year4,
    Year2,
    Month,
    Seq(usize),
}

pub fn parse(format: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = format;
    let mut seqs = 0;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_string()));
        }
        let end = rest[start..].find('}').ok_or("unclosed `{`")? + start;
        let token = &rest[start + 1..end];
        parts.push(match token {
            "YYYY" => Part::Year4,
            "YY" => Part::Year2,
            "MM" => Part::Month,
            "seq" => {
                seqs += 1;
                Part::Seq(0)
            }
            t if t.starts_with("seq:") => {
                seqs += 1;
                let n: usize = t[4..]
                    .parse()
                    .map_err(|_| format!("bad width in `{{{t}}}`"))?;
                if n > 12 {
                    return Err("sequence width is at most 12".into());
                }
                Part::Seq(n)
            }
            t => return Err(format!("unknown token `{{{t}}}`")),
        });
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    if seqs != 1 {
        return Err("exactly one {seq} token is needed".into());
    }
    Ok(parts)
}

/// The counter's period key for `date`: the format without its sequence.
pub fn period(parts: &[Part], date: chrono::NaiveDate) -> String {
    render(parts, date, None)
}

/// The number for sequence value `seq` on `date`.
pub fn render(parts: &[Part], date: chrono::NaiveDate, seq: Option<i64>) -> String {
    use chrono::Datelike;
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Year4 => out.push_str(&format!("{:04}", date.year())),
            Part::Year2 => out.push_str(&format!("{:02}", date.year() % 100)),
            Part::Month => out.push_str(&format!("{:02}", date.month())),
            Part::Seq(w) => match seq {
                Some(n) => out.push_str(&format!("{n:0w$}", w = *w)),
                None => out.push_str("{seq}"),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_numbers_and_periods() {
        let p = parse("OF-{YYYY}-{seq:5}").unwrap();
        let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        assert_eq!(render(&p, d, Some(42)), "OF-2026-00042");
        assert_eq!(period(&p, d), "OF-2026-{seq}");
        assert!(parse("X-{seq}-{seq}").is_err());
        assert!(parse("X-{foo}-{seq}").is_err());
    }
}
