//! Postgres column types → codec kinds. This is the one place that decides how a column is
//! read and modelled; it knows type names, not tch or pgrx.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A column as the catalog describes it.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, e.g. `timestamp without time zone`, `integer`.
    pub type_name: String,
    /// The type is an enum (read as text, modelled as a category).
    pub is_enum: bool,
}

/// How the reader hands a column's values to the codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadAs {
    /// Seconds since 1970-01-01 (timestamp, timestamptz, date).
    Epoch,
    Int,
    Float,
    /// Seconds (interval).
    IntervalSeconds,
    Text,
    /// IPv4 address as a 32-bit integer.
    Ipv4,
}

/// What the model does with a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The order column: gaps between a stream's rows.
    Order,
    Ipv4,
    Port,
    Category,
    /// Integer: a category when it has few distinct values, else a count (decided when fitting).
    Integer,
    Count,
    Continuous,
    Skip,
}

/// The plan for one column: how to read it and how to model it.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub name: String,
    pub type_name: String,
    pub read_as: ReadAs,
    pub kind: Kind,
}

/// The most columns one model learns: the codecs' pair masks and ratio bounds and the network's
/// heads grow with the square of this.
pub const MAX_MODELLED_COLUMNS: usize = 64;

/// Column kinds a user may force through the `columns` option.
pub const OVERRIDES: &[&str] = &["port", "category", "count", "continuous", "skip"];

fn is_time_type(t: &str) -> bool {
    t.starts_with("timestamp") || t == "date"
}

/// Port columns by their exporters' names: nfdump's `sp`/`dp`, anything with `port`
/// (`l4_dst_port`, `srcport`), Zeek's `id.orig_p`/`id.resp_p` (or `id_orig_p` once loaded).
fn is_port_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "sp" || n == "dp" || n.contains("port") || n.ends_with("_p") || n.ends_with(".p")
}

/// Decide, for every column of the table, how it is read and modelled.
///
/// `order_by` names the order column (default: the first timestamp column); `overrides` maps
/// column names to one of [`OVERRIDES`].
pub fn plan_columns(
    columns: &[ColumnInfo],
    order_by: Option<&str>,
    overrides: &[(String, String)],
) -> Result<Vec<ColumnPlan>> {
    for (name, kind) in overrides {
        if !columns.iter().any(|c| &c.name == name) {
            return Err(Error::option(
                "columns",
                format!("column \"{name}\" does not exist in the table"),
            ));
        }
        if !OVERRIDES.contains(&kind.as_str()) {
            return Err(Error::option(
                "columns",
                format!(
                    "column \"{name}\": unknown kind \"{kind}\" (valid: {})",
                    OVERRIDES.join(", ")
                ),
            ));
        }
    }
    let order_column = match order_by {
        Some(name) => {
            let col = columns.iter().find(|c| c.name == name).ok_or_else(|| {
                Error::option("order_by", format!("column \"{name}\" does not exist"))
            })?;
            if !is_time_type(&col.type_name) {
                return Err(Error::option(
                    "order_by",
                    format!(
                        "column \"{name}\" is {}, not a timestamp, timestamptz or date",
                        col.type_name
                    ),
                ));
            }
            Some(name.to_string())
        }
        None => columns
            .iter()
            .find(|c| is_time_type(&c.type_name) && !overridden(overrides, &c.name, "skip"))
            .map(|c| c.name.clone()),
    };
    let Some(order_column) = order_column else {
        return Err(Error::option(
            "order_by",
            "the table has no timestamp, timestamptz or date column to order flows by",
        ));
    };

    let mut plans = Vec::with_capacity(columns.len());
    for col in columns {
        let forced = overrides
            .iter()
            .find(|(n, _)| n == &col.name)
            .map(|(_, k)| k.as_str());
        let plan = plan_column(col, col.name == order_column, forced)?;
        plans.push(plan);
    }
    let modelled = plans.iter().filter(|p| p.kind != Kind::Skip).count();
    if modelled > MAX_MODELLED_COLUMNS {
        return Err(Error::LimitExceeded(format!(
            "the table has {modelled} columns to model; at most {MAX_MODELLED_COLUMNS} are (flow tables have a few dozen): skip the others with columns => '{{\"col\": \"skip\"}}'"
        )));
    }
    // The order column comes first: every later attribute sees the current row's time of day.
    plans.sort_by_key(|p| p.kind != Kind::Order);
    Ok(plans)
}

/// The order in which the model draws a row's columns: the order column, then the categories
/// (protocol, flags), then addresses and ports, then the rest (durations, sizes) as in the
/// table. What kind of flow a row is decides its ports, addresses and sizes more than the other
/// way round: a GRE or ESP flow is drawn as such and gets ports that fit, instead of needing
/// ports that happen to fit it first. Likewise who talks to whom on which port says how long
/// and how large the flow is: a host's periodic 300 s transfer is told apart by its port.
pub fn modelling_order(mut plans: Vec<ColumnPlan>) -> Vec<ColumnPlan> {
    plans.sort_by_key(|p| match p.kind {
        Kind::Order => 0,
        Kind::Category => 1,
        Kind::Ipv4 | Kind::Port => 2,
        _ => 3,
    });
    plans
}

fn overridden(overrides: &[(String, String)], name: &str, kind: &str) -> bool {
    overrides.iter().any(|(n, k)| n == name && k == kind)
}

fn plan_column(col: &ColumnInfo, is_order: bool, forced: Option<&str>) -> Result<ColumnPlan> {
    let t = col.type_name.as_str();
    let unsupported = |why: &str| Error::UnsupportedColumn {
        column: col.name.clone(),
        reason: format!(
            "{why}; skip it with columns => '{{\"{}\": \"skip\"}}'",
            col.name
        ),
    };
    let read_as = if is_time_type(t) {
        ReadAs::Epoch
    } else if t == "inet" {
        ReadAs::Ipv4
    } else if matches!(t, "smallint" | "integer" | "bigint") {
        ReadAs::Int
    } else if matches!(t, "real" | "double precision") || t.starts_with("numeric") {
        ReadAs::Float
    } else if t.starts_with("interval") {
        ReadAs::IntervalSeconds
    } else if col.is_enum
        || t == "text"
        || t == "boolean"
        || t.starts_with("character varying")
        || t.starts_with("character")
        || forced == Some("skip")
    {
        ReadAs::Text
    } else {
        return Err(unsupported(&format!("type {t} is not supported")));
    };
    let kind = match forced {
        Some("skip") => Kind::Skip,
        _ if is_order => Kind::Order,
        Some("port") if read_as == ReadAs::Int => Kind::Port,
        Some("category") if read_as != ReadAs::Ipv4 => Kind::Category,
        Some("count") if read_as == ReadAs::Int => Kind::Count,
        Some("continuous")
            if matches!(
                read_as,
                ReadAs::Int | ReadAs::Float | ReadAs::IntervalSeconds | ReadAs::Epoch
            ) =>
        {
            Kind::Continuous
        }
        Some(k) => {
            return Err(Error::option(
                "columns",
                format!(
                    "column \"{}\" of type {t} cannot be modelled as {k}",
                    col.name
                ),
            ))
        }
        None => match read_as {
            ReadAs::Epoch | ReadAs::Float | ReadAs::IntervalSeconds => Kind::Continuous,
            ReadAs::Ipv4 => Kind::Ipv4,
            ReadAs::Int if is_port_name(&col.name) => Kind::Port,
            ReadAs::Int => Kind::Integer,
            ReadAs::Text => Kind::Category,
        },
    };
    Ok(ColumnPlan {
        name: col.name.clone(),
        type_name: col.type_name.clone(),
        read_as,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            type_name: t.into(),
            is_enum: false,
        }
    }

    #[test]
    fn more_columns_than_the_limit_are_refused_unless_skipped() {
        let mut cols = vec![col("te", "timestamp without time zone")];
        cols.extend((0..MAX_MODELLED_COLUMNS).map(|i| col(&format!("c{i}"), "integer")));
        let err = plan_columns(&cols, None, &[]).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
        assert!(err.to_string().contains("65 columns"), "{err}");
        let skip = [("c0".to_string(), "skip".to_string())];
        assert_eq!(plan_columns(&cols, None, &skip).unwrap().len(), cols.len());
    }

    #[test]
    fn exporters_port_names_are_ports() {
        for name in [
            "sp",
            "DP",
            "l4_dst_port",
            "srcport",
            "id.orig_p",
            "id_resp_p",
        ] {
            let plans = plan_columns(
                &[
                    col("ts", "timestamp without time zone"),
                    col(name, "integer"),
                ],
                None,
                &[],
            )
            .unwrap();
            assert_eq!(plans[1].kind, Kind::Port, "{name}");
        }
        let plans = plan_columns(
            &[
                col("ts", "timestamp without time zone"),
                col("proto", "integer"),
            ],
            None,
            &[],
        )
        .unwrap();
        assert_eq!(plans[1].kind, Kind::Integer);
    }

    #[test]
    fn flows_table_maps_as_designed() {
        let cols = [
            col("sa", "inet"),
            col("te", "timestamp without time zone"),
            col("dp", "integer"),
            col("pr", "text"),
            col("pkt", "bigint"),
            col("td", "double precision"),
        ];
        let plans = plan_columns(&cols, None, &[]).unwrap();
        let kinds: Vec<_> = plans.iter().map(|p| (p.name.as_str(), p.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("te", Kind::Order),
                ("sa", Kind::Ipv4),
                ("dp", Kind::Port),
                ("pr", Kind::Category),
                ("pkt", Kind::Integer),
                ("td", Kind::Continuous)
            ]
        );
        let drawn: Vec<_> = modelling_order(plans)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(drawn, ["te", "pr", "sa", "dp", "pkt", "td"]);
    }

    /// A table that lists durations and sizes before the flow's endpoints still has them drawn
    /// after the endpoints, in the table's order among themselves.
    #[test]
    fn durations_and_sizes_are_drawn_after_addresses_and_ports() {
        let cols = [
            col("te", "timestamp without time zone"),
            col("td", "double precision"),
            col("pkt", "bigint"),
            col("dp", "integer"),
            col("pr", "text"),
            col("da", "inet"),
            col("byt", "bigint"),
        ];
        let drawn: Vec<_> = modelling_order(plan_columns(&cols, None, &[]).unwrap())
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(drawn, ["te", "pr", "dp", "da", "td", "pkt", "byt"]);
    }

    #[test]
    fn unsupported_type_names_the_column() {
        let err =
            plan_columns(&[col("te", "date"), col("payload", "jsonb")], None, &[]).unwrap_err();
        assert!(err.to_string().contains("\"payload\""), "{err}");
        let ok = plan_columns(
            &[col("te", "date"), col("payload", "jsonb")],
            None,
            &[("payload".into(), "skip".into())],
        )
        .unwrap();
        assert_eq!(ok[1].kind, Kind::Skip);
    }

    #[test]
    fn order_by_must_be_a_time_column() {
        let err =
            plan_columns(&[col("te", "date"), col("n", "integer")], Some("n"), &[]).unwrap_err();
        assert!(err.to_string().contains("order_by"), "{err}");
    }
}
