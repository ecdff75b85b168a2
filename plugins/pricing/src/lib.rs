//! Pricing: line amounts, discounts, taxes and document totals, to the cent.
//!
//! For each line (the children field named by `config.lines`, default `lines`):
//!
//! ```text
//! amount          = round(quantity × unit_price)
//! net_amount      = round(quantity × unit_price × (1 − discount_percent / 100))
//! discount_amount = amount − net_amount
//! tax_amount      = round(net_amount × tax_rate / 100)
//! gross_amount    = net_amount + tax_amount
//! ```
//!
//! and on the document: `subtotal` = Σ amount, `discount_total` = Σ discount_amount,
//! `net_total` = Σ net_amount, `tax_total` = Σ tax_amount, `grand_total` = net_total +
//! tax_total.
//!
//! Rounding is stated, not implied: every `round` is to `config.scale` digits (default 2,
//! the currency's minor unit) with half away from zero ("commercial rounding"), applied
//! per line, so the document's totals are the sums of the rounded line amounts that a
//! customer sees printed. All arithmetic is `rust_decimal`.

use platform_plugin_api::{
    get_decimal, set_decimal, HookContext, Issue, Plugin, PluginError, Record,
};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

pub struct Pricing;

struct Config {
    lines: String,
    scale: u32,
}

impl Config {
    fn from(value: &Value) -> Result<Config, String> {
        let lines = match value.get("lines") {
            None => "lines".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("`lines` must be the name of a children field".into()),
        };
        let scale = match value.get("scale") {
            None => 2,
            Some(v) => match v.as_u64() {
                Some(s) if s <= 8 => s as u32,
                _ => return Err("`scale` must be an integer from 0 to 8".into()),
            },
        };
        Ok(Config { lines, scale })
    }
}

fn round(v: Decimal, scale: u32) -> Decimal {
    v.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
}

impl Plugin for Pricing {
    fn name(&self) -> &'static str {
        "pricing"
    }

    fn check_config(&self, config: &Value) -> Result<(), String> {
        Config::from(config).map(|_| ())
    }

    fn compute(&self, ctx: &HookContext<'_>, record: &mut Record) -> Result<(), PluginError> {
        let cfg = Config::from(ctx.config).map_err(PluginError::Config)?;
        let hundred = Decimal::ONE_HUNDRED;
        let (mut subtotal, mut discounts, mut net, mut tax) =
            (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
        let mut issues = Vec::new();
        if let Some(Value::Array(lines)) = record.get_mut(&cfg.lines) {
            for (i, line) in lines.iter_mut().enumerate() {
                let Some(line) = line.as_object_mut() else {
                    continue;
                };
                let mut get = |f: &str| match get_decimal(line, f) {
                    Ok(v) => v,
                    Err(mut e) => {
                        e.field = format!("{}[{i}].{f}", cfg.lines);
                        issues.push(e);
                        None
                    }
                };
                let qty = get("quantity").unwrap_or(Decimal::ZERO);
                let price = get("unit_price").unwrap_or(Decimal::ZERO);
                let disc = get("discount_percent").unwrap_or(Decimal::ZERO);
                let rate = get("tax_rate").unwrap_or(Decimal::ZERO);
                let amount = round(qty * price, cfg.scale);
                let line_net = round(qty * price * (hundred - disc) / hundred, cfg.scale);
                let line_tax = round(line_net * rate / hundred, cfg.scale);
                set_decimal(line, "amount", amount, cfg.scale);
                set_decimal(line, "discount_amount", amount - line_net, cfg.scale);
                set_decimal(line, "net_amount", line_net, cfg.scale);
                set_decimal(line, "tax_amount", line_tax, cfg.scale);
                set_decimal(line, "gross_amount", line_net + line_tax, cfg.scale);
                subtotal += amount;
                discounts += amount - line_net;
                net += line_net;
                tax += line_tax;
            }
        }
        if !issues.is_empty() {
            return Err(PluginError::Invalid(issues));
        }
        set_decimal(record, "subtotal", subtotal, cfg.scale);
        set_decimal(record, "discount_total", discounts, cfg.scale);
        set_decimal(record, "net_total", net, cfg.scale);
        set_decimal(record, "tax_total", tax, cfg.scale);
        set_decimal(record, "grand_total", net + tax, cfg.scale);
        Ok(())
    }

    fn validate(&self, ctx: &HookContext<'_>, record: &Record) -> Vec<Issue> {
        // A document whose discounts exceed its amount would have a negative total.
        match get_decimal(record, "grand_total") {
            Ok(Some(t)) if t < Decimal::ZERO => vec![Issue::new(
                "grand_total",
                "pricing",
                format!("the total of this {} may not be negative", ctx.object),
                Value::String(t.to_string()),
            )],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_plugin_api::Operation;
    use serde_json::json;

    fn run(record: Value, config: Value) -> Record {
        let mut r = record.as_object().cloned().unwrap_or_default();
        let ctx = HookContext {
            object: "offer",
            config: &config,
            operation: Operation::Create,
        };
        Pricing.compute(&ctx, &mut r).unwrap();
        r
    }

    #[test]
    fn totals_are_sums_of_rounded_lines() {
        let r = run(
            json!({"lines": [
                {"quantity": "3", "unit_price": "19.99", "discount_percent": "10", "tax_rate": "25"},
                {"quantity": "1.5", "unit_price": "0.333", "tax_rate": "13"}
            ]}),
            Value::Null,
        );
        // 3 × 19.99 = 59.97; net 53.973 -> 53.97; tax 13.4925 -> 13.49
        assert_eq!(r["lines"][0]["amount"], json!("59.97"));
        assert_eq!(r["lines"][0]["net_amount"], json!("53.97"));
        assert_eq!(r["lines"][0]["discount_amount"], json!("6.00"));
        assert_eq!(r["lines"][0]["tax_amount"], json!("13.49"));
        assert_eq!(r["lines"][0]["gross_amount"], json!("67.46"));
        // 1.5 × 0.333 = 0.4995 -> 0.50 (half away from zero); tax 0.065 -> 0.07
        assert_eq!(r["lines"][1]["net_amount"], json!("0.50"));
        assert_eq!(r["lines"][1]["tax_amount"], json!("0.07"));
        assert_eq!(r["subtotal"], json!("60.47"));
        assert_eq!(r["discount_total"], json!("6.00"));
        assert_eq!(r["net_total"], json!("54.47"));
        assert_eq!(r["tax_total"], json!("13.56"));
        assert_eq!(r["grand_total"], json!("68.03"));
    }

    #[test]
    fn no_lines_gives_zero_totals_at_the_configured_scale() {
        let r = run(json!({}), json!({"scale": 0}));
        assert_eq!(r["grand_total"], json!("0"));
        let r = run(
            json!({"items": [{"quantity": 2, "unit_price": 1.005}]}),
            json!({"lines": "items", "scale": 3}),
        );
        assert_eq!(r["net_total"], json!("2.010"));
    }

    #[test]
    fn a_bad_decimal_is_an_issue_on_its_line() {
        let mut r = json!({"lines": [{"quantity": "x", "unit_price": "1"}]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let ctx = HookContext {
            object: "offer",
            config: &Value::Null,
            operation: Operation::Create,
        };
        match Pricing.compute(&ctx, &mut r) {
            Err(PluginError::Invalid(issues)) => assert_eq!(issues[0].field, "lines[0].quantity"),
            other => panic!("expected an issue, got {other:?}"),
        }
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(Pricing.check_config(&json!({"scale": 99})).is_err());
        assert!(Pricing.check_config(&json!({"lines": "lines"})).is_ok());
    }

    #[test]
    fn negative_totals_are_refused() {
        let r = json!({"grand_total": "-1.00"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let ctx = HookContext {
            object: "offer",
            config: &Value::Null,
            operation: Operation::Create,
        };
        assert_eq!(Pricing.validate(&ctx, &r)[0].rule, "pricing");
    }
}
