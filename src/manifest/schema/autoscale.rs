//! `[autoscale]` and its `[[autoscale.schedule]]` entries: the policy the
//! autoscaler follows. When present it owns `web.count`, so the two are
//! deliberately not cross-checked.

use std::time::Duration;

use toml::de::DeValue;

use super::Checker;
use super::cron::{self, CronError};
use super::duration;
use super::names;
use super::services::u32_from;
use super::table::{Field, Key, Reported, Section, TableSpec};
use crate::manifest::{Autoscale, Metric, PolicyKind, Schedule};

pub(super) const AUTOSCALE: TableSpec = TableSpec {
    name: "autoscale",
    label: "[autoscale]",
    keys: &[
        Key::required("metric", "\"requests_per_instance\""),
        Key::required("target", "50"),
        Key::required("min", "2"),
        Key::required("max", "20"),
        Key::optional("scale_out_cooldown", "\"60s\""),
        Key::optional("scale_in_cooldown", "\"300s\""),
        Key::optional("warmup", "\"120s\""),
        Key::optional("interval", "\"30s\""),
        Key::optional("schedule", "[{ cron = \"0 8 * * MON-FRI\", min = 4 }]"),
        Key::optional("predictive", "true"),
        Key::optional("policy", "\"forecast\""),
        Key::optional("boot", "\"120s\""),
        Key::optional("forecast_quantile", "0.9"),
        Key::optional("forecast_only", "true"),
        Key::optional(
            "replicas",
            "{ metric = \"connections\", target = 20, min = 1, max = 3 }",
        ),
    ],
};

const POLICIES: &[(&str, PolicyKind)] = &[
    ("reactive", PolicyKind::Reactive),
    ("forecast", PolicyKind::Forecast),
];

const SCHEDULE: TableSpec = TableSpec {
    name: "schedule",
    label: "[[autoscale.schedule]]",
    keys: &[
        Key::required("cron", "\"0 8 * * MON-FRI\""),
        Key::optional("timezone", "\"Europe/Berlin\""),
        Key::optional("min", "4"),
        Key::optional("max", "10"),
        Key::optional("desired", "6"),
    ],
};

const METRICS: &[(&str, Metric)] = &[
    ("requests_per_instance", Metric::RequestsPerInstance),
    ("response_time_ms", Metric::ResponseTimeMs),
    ("cpu_percent", Metric::CpuPercent),
    ("queue_time_ms", Metric::QueueTimeMs),
];

/// The longest queue time a target may be: a request queued longer than
/// the `timeout queue 10s` in `templates/haproxy/haproxy.cfg` is refused
/// (503), not late, so a higher target could never be read.
const MAX_QUEUE_TARGET_MS: f64 = 10_000.0;

/// The most web servers autoscaling may ask for, as for `web.count`.
const MAX_INSTANCES: i64 = 10_000;

/// `has_database`: whether the manifest has `[database]`, which
/// `[autoscale.replicas]` needs; `web_queues`: whether `[web]` sets
/// `max_connections`, which `metric = "queue_time_ms"` needs.
pub(super) fn check(
    ck: &mut Checker,
    s: &Section,
    has_database: bool,
    web_queues: bool,
) -> Result<Autoscale, Reported> {
    let metric = s.require(ck, "metric").and_then(|f| {
        let m = metric(ck, f)?;
        if m == Metric::QueueTimeMs && !web_queues {
            // Refused, not warned: without a per-server limit HAProxy never
            // queues, the reading is always 0 and the tier would shrink to
            // `min` under any load.
            ck.error(
                f.span(),
                "`metric = \"queue_time_ms\"` needs `max_connections` in [web]",
                "HAProxy queues requests (and measures their queue time) only when each app \
                 server has a limit: add `max_connections = 4` under [web] (the most requests \
                 one app server handles at once), or choose another metric",
            );
        }
        Ok(m)
    });
    let target = s
        .require(ck, "target")
        .and_then(|f| target(ck, f, metric.ok()));
    let bounds = min_max(ck, s, MAX_INSTANCES);
    let scale_out_cooldown = duration_or(ck, s, "scale_out_cooldown", 60);
    let scale_in_cooldown = duration_or(ck, s, "scale_in_cooldown", 300);
    let warmup = duration_or(ck, s, "warmup", 120);
    let interval = duration_or(ck, s, "interval", 30).and_then(|d| {
        if d >= Duration::from_secs(1) {
            return Ok(d);
        }
        let f = s.field("interval").ok_or(Reported)?;
        Err(ck.error(
            f.span(),
            format!(
                "`interval` must be at least 1s, found {:?}",
                f.value().as_str().unwrap_or_default()
            ),
            f.example_help(),
        ))
    });
    let schedule = match s.field("schedule") {
        Some(f) => schedules(ck, f),
        None => Ok(Vec::new()),
    };
    let (min, max) = bounds?;
    let predictive = match s.field("predictive") {
        Some(f) => f.bool(ck),
        None => Ok(false),
    };
    let policy = match s.field("policy") {
        Some(f) => policy_kind(ck, f),
        None => Ok(PolicyKind::Reactive),
    };
    let boot = match s.field("boot") {
        Some(_) => duration_or(ck, s, "boot", 0).map(Some),
        None => Ok(None),
    };
    let forecast_quantile = match s.field("forecast_quantile") {
        Some(f) => quantile(ck, f).map(Some),
        None => Ok(None),
    };
    let forecast_only = match s.field("forecast_only") {
        Some(f) => f.bool(ck),
        None => Ok(false),
    };
    let replicas = match s.field("replicas") {
        Some(f) => super::autoscale_replicas::check(ck, f, has_database).map(Some),
        None => Ok(None),
    };
    Ok(Autoscale {
        replicas: replicas?,
        metric: metric?,
        target: target?,
        min,
        max,
        scale_out_cooldown: scale_out_cooldown?,
        scale_in_cooldown: scale_in_cooldown?,
        warmup: warmup?,
        interval: interval?,
        schedule: schedule?,
        predictive: predictive?,
        policy: policy?,
        boot: boot?,
        forecast_quantile: forecast_quantile?,
        forecast_only: forecast_only?,
    })
}

fn quantile(ck: &mut Checker, f: Field) -> Result<f64, Reported> {
    let q = f.number(ck)?;
    if (0.5..=0.999).contains(&q) {
        return Ok(q);
    }
    Err(ck.error(
        f.span(),
        format!("`forecast_quantile` must be from 0.5 to 0.999, found {q}"),
        "it is how cautious the forecast's margin is, e.g. `forecast_quantile = 0.9`",
    ))
}

fn policy_kind(ck: &mut Checker, f: Field) -> Result<PolicyKind, Reported> {
    one_of(ck, f, POLICIES, "policy")
}

fn metric(ck: &mut Checker, f: Field) -> Result<Metric, Reported> {
    one_of(ck, f, METRICS, "metric")
}

/// The value of the string `f` names among `choices`, else "unknown `what`"
/// listing them.
pub(super) fn one_of<T: Copy>(
    ck: &mut Checker,
    f: Field,
    choices: &[(&str, T)],
    what: &str,
) -> Result<T, Reported> {
    let written = f.str(ck)?;
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == written) {
        return Ok(*value);
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    Err(ck.error(
        f.span(),
        format!("unknown {what} {written:?}"),
        format!("expected one of: {}", names.join(", ")),
    ))
}

/// `min` and `max` (required, from 1 to `limit`), `min > max` reported at `min`.
pub(super) fn min_max(ck: &mut Checker, s: &Section, limit: i64) -> Result<(u32, u32), Reported> {
    let min = s.require(ck, "min");
    let min_value = min.and_then(|f| f.integer(ck, 1, limit));
    let max = s.require(ck, "max").and_then(|f| f.integer(ck, 1, limit));
    let (min, lo, hi) = (min?, min_value?, max?);
    min_not_above_max(ck, min, lo, hi)?;
    Ok((u32_from(lo), u32_from(hi)))
}

fn target(ck: &mut Checker, f: Field, metric: Option<Metric>) -> Result<f64, Reported> {
    let target = f.number(ck)?;
    if target <= 0.0 {
        return Err(ck.error(
            f.span(),
            format!("`target` must be greater than 0, found {target}"),
            f.example_help(),
        ));
    }
    if metric == Some(Metric::CpuPercent) && target > 100.0 {
        return Err(ck.error(
            f.span(),
            format!("`target` for \"cpu_percent\" must be at most 100, found {target}"),
            "a CPU target is a percentage, e.g. `target = 60`",
        ));
    }
    if metric == Some(Metric::QueueTimeMs) && target > MAX_QUEUE_TARGET_MS {
        return Err(ck.error(
            f.span(),
            format!(
                "`target` for \"queue_time_ms\" must be at most {MAX_QUEUE_TARGET_MS} ms, found {target}"
            ),
            "a queue-time target is milliseconds a request waits for a server, e.g. `target = 20`",
        ));
    }
    Ok(target)
}

/// Reports `min > max` at `min`.
fn min_not_above_max(ck: &mut Checker, min: Field, lo: i64, hi: i64) -> Result<(), Reported> {
    if lo <= hi {
        return Ok(());
    }
    Err(ck.error(
        min.span(),
        format!("`min` ({lo}) is greater than `max` ({hi})"),
        format!("lower `min` to at most {hi}, or raise `max` to at least {lo}"),
    ))
}

pub(super) fn duration_or(
    ck: &mut Checker,
    s: &Section,
    key: &'static str,
    default_secs: u64,
) -> Result<Duration, Reported> {
    let Some(f) = s.field(key) else {
        return Ok(Duration::from_secs(default_secs));
    };
    let written = f.str(ck)?;
    duration::parse_duration(written).map_err(|e| match e {
        duration::DurationError::Form(_) => ck.error(
            f.span(),
            format!("`{key}` must be a duration like \"90s\", found {written:?}"),
            format!("write {}", duration::FORMS),
        ),
        duration::DurationError::TooLong(_) => ck.error(
            f.span(),
            format!("`{key}` is too long: {e}"),
            format!("write at most \"8784h\"; {key} is usually seconds or minutes"),
        ),
    })
}

fn schedules(ck: &mut Checker, f: Field) -> Result<Vec<Schedule>, Reported> {
    const HELP: &str = "write each schedule under its own `[[autoscale.schedule]]` header \
        (double brackets) with `cron` and at least one of `min`, `max` or `desired`";
    let DeValue::Array(items) = f.value() else {
        return Err(ck.error(
            f.span(),
            format!(
                "`schedule` must be an array of tables, found {}",
                f.value().type_str()
            ),
            HELP,
        ));
    };
    let mut result = Ok(Vec::with_capacity(items.len()));
    for item in items.iter() {
        let checked = match item.get_ref() {
            DeValue::Table(table) => {
                let section = Section::open(ck, &SCHEDULE, item.span(), table);
                schedule(ck, &section)
            }
            other => Err(ck.error(
                item.span(),
                format!(
                    "`schedule` entries must be tables, found {}",
                    other.type_str()
                ),
                HELP,
            )),
        };
        match (&mut result, checked) {
            (Ok(list), Ok(entry)) => list.push(entry),
            (_, Err(reported)) => result = Err(reported),
            (Err(_), Ok(_)) => {}
        }
    }
    result
}

fn schedule(ck: &mut Checker, s: &Section) -> Result<Schedule, Reported> {
    let cron = s.require(ck, "cron").and_then(|f| cron_expression(ck, f));
    let timezone = match s.field("timezone") {
        Some(f) => timezone(ck, f),
        None => Ok("UTC".to_string()),
    };
    let bound = |ck: &mut Checker, key| {
        s.field(key)
            .map(|f| f.integer(ck, 0, MAX_INSTANCES).map(|n| (f, n)))
            .transpose()
    };
    let (min, max, desired) = (bound(ck, "min"), bound(ck, "max"), bound(ck, "desired"));
    if let (Ok(None), Ok(None), Ok(None)) = (&min, &max, &desired) {
        return Err(ck.missing(
            s.span(),
            format!("{} sets none of `min`, `max` and `desired`", s.spec().label),
            "add at least one of them, e.g. `min = 4`",
        ));
    }
    if let (Ok(Some((min_field, lo))), Ok(Some((_, hi)))) = (&min, &max) {
        min_not_above_max(ck, *min_field, *lo, *hi)?;
    }
    if let Ok(Some((desired_field, n))) = &desired {
        desired_within(ck, *desired_field, *n, &min, &max)?;
    }
    let value = |b: Result<Option<(Field, i64)>, Reported>| b.map(|o| o.map(|(_, n)| u32_from(n)));
    Ok(Schedule {
        cron: cron?,
        timezone: timezone?,
        min: value(min)?,
        max: value(max)?,
        desired: value(desired)?,
    })
}

type Bound<'a, 'i> = Result<Option<(Field<'a, 'i>, i64)>, Reported>;

fn desired_within(
    ck: &mut Checker,
    desired: Field,
    n: i64,
    min: &Bound,
    max: &Bound,
) -> Result<(), Reported> {
    if let Ok(Some((_, lo))) = min {
        if n < *lo {
            return Err(ck.error(
                desired.span(),
                format!("`desired` ({n}) is less than `min` ({lo})"),
                format!("set `desired` to at least {lo}, or lower `min`"),
            ));
        }
    }
    if let Ok(Some((_, hi))) = max {
        if n > *hi {
            return Err(ck.error(
                desired.span(),
                format!("`desired` ({n}) is greater than `max` ({hi})"),
                format!("set `desired` to at most {hi}, or raise `max`"),
            ));
        }
    }
    Ok(())
}

fn cron_expression(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let expr = f.str(ck)?;
    match cron::check(expr) {
        Ok(()) => Ok(expr.to_string()),
        Err(CronError::FieldCount(n)) => Err(ck.error(
            f.span(),
            format!(
                "`cron` must have 5 fields (minute hour day-of-month month day-of-week), \
                 found {n}"
            ),
            cron::FIELDS_HELP,
        )),
        Err(CronError::Field { name, span, reason }) => {
            let written = &expr[span.clone()];
            let at = inner_span(ck.text(), f, expr, span).unwrap_or_else(|| f.span());
            Err(ck.error(
                at,
                format!("invalid {name} field `{written}` in `cron`: {reason}"),
                cron::FIELDS_HELP,
            ))
        }
    }
}

/// The span in the file of `within` (a byte range of the string value), when
/// the string was written plainly between quotes, so offsets match the text.
fn inner_span(
    text: &str,
    f: Field,
    value: &str,
    within: std::ops::Range<usize>,
) -> Option<std::ops::Range<usize>> {
    let span = f.span();
    let raw = text.get(span.clone())?;
    let plain = [("\"", "\""), ("'", "'")].iter().any(|(open, close)| {
        raw.strip_prefix(open).and_then(|r| r.strip_suffix(close)) == Some(value)
    });
    if !plain {
        return None;
    }
    let start = span.start + 1;
    Some(start + within.start..start + within.end)
}

fn timezone(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let zone = f.str(ck)?;
    if names::timezone(zone) {
        return Ok(zone.to_string());
    }
    Err(ck.error(
        f.span(),
        format!(
            "`timezone` must be \"UTC\" or an IANA time zone like \"Europe/Berlin\", \
             found {zone:?}"
        ),
        "write Area/Location, e.g. `timezone = \"America/New_York\"`",
    ))
}
