//! A plan as text for people: one line per action with its reason, details
//! indented below, and a summary line. Nothing secret is ever in a plan.

use std::fmt::Write;

use crate::graph::{ResourceSpec, RuleSource};

use super::{Action, ActionKind, Plan};

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if !plan.has_changes() {
        let _ = writeln!(out, "No changes. {} matches its manifest.", plan.app);
        return out;
    }
    let width = plan
        .actions
        .iter()
        .map(|a| a.address.to_string().len())
        .chain(plan.orphans.iter().map(|o| o.id.len()))
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "appgrid will make these changes to {}:", plan.app);
    let _ = writeln!(out);
    for a in &plan.actions {
        let _ = writeln!(
            out,
            "  {:>3} {:<width$}  {}: {}",
            a.kind.symbol(),
            a.address.to_string(),
            verb(a.kind),
            a.reason
        );
        for line in details(a) {
            let _ = writeln!(out, "        {line}");
        }
    }
    for o in &plan.orphans {
        let _ = writeln!(out, "  {:>3} {:<width$}  delete: {}", "-", o.id, o.reason);
    }
    let s = plan.summary();
    let _ = writeln!(out);
    let mut parts = vec![
        format!("{} to add", s.create),
        format!("{} to change", s.update),
        format!("{} to replace", s.replace),
        format!("{} to destroy", s.delete),
    ];
    if s.adopt > 0 {
        parts.push(format!("{} to adopt", s.adopt));
    }
    if s.moved > 0 {
        parts.push(format!("{} to move online", s.moved));
    }
    let _ = writeln!(out, "Plan: {}.", parts.join(", "));
    out
}

fn verb(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Adopt => "adopt",
        ActionKind::Create => "create",
        ActionKind::Update => "update",
        ActionKind::Replace => "replace",
        ActionKind::Move => "move online",
        ActionKind::Delete => "delete",
    }
}

fn details(a: &Action) -> Vec<String> {
    if !a.changes.is_empty() {
        return a
            .changes
            .iter()
            .map(|c| match (&c.before, &c.after) {
                (Some(b), Some(x)) => format!("{}: {b} -> {x}", c.field),
                (None, Some(x)) => format!("+ {}: {x}", c.field),
                (Some(b), None) => format!("- {}: {b}", c.field),
                (None, None) => c.field.clone(),
            })
            .collect();
    }
    match (a.kind, &a.desired) {
        (ActionKind::Create, Some(spec)) => describe(spec),
        _ => Vec::new(),
    }
}

fn describe(spec: &ResourceSpec) -> Vec<String> {
    match spec {
        ResourceSpec::KeyPair(k) => vec![format!("{} from {}", k.name, k.public_key_path)],
        ResourceSpec::SecurityGroup(g) => {
            let mut lines = vec![g.name.clone()];
            lines.extend(g.rules.iter().map(|r| match &r.from {
                RuleSource::Cidr(_) | RuleSource::Group(_) => format!("allow {r}"),
            }));
            lines
        }
        ResourceSpec::Config(_) => Vec::new(),
        // Only AWS machines have an image and a group; `local` and `hosts` ones a place.
        ResourceSpec::Instance(i) if i.image.is_empty() => vec![match i.zone.as_str() {
            "local" => "a loopback address and a directory on this machine".to_string(),
            _ => "a host from the pool".to_string(),
        }],
        ResourceSpec::Instance(i) => vec![format!(
            "{} in {}, image {}, sg.{}",
            i.instance_type,
            i.zone,
            i.image,
            i.group.as_str()
        )],
    }
}
