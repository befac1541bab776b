//! Read-only commands: `validate`, `graph`, `state list`, `state show` (text,
//! or `--json` with the same facts); and `state forget-host-key`, which
//! edits one attribute under the state lock.

use std::path::Path;
use std::process::ExitCode;

use appgrid::engine::Workspace;
use appgrid::graph::ResourceAddress;

use super::Failure;
use super::term::{out, outln};

pub fn validate(file: &Path) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, None)?;
    let graph = ws.graph()?;
    outln!(
        "{} is valid: app `{}`, {} resources",
        file.display(),
        ws.manifest.manifest.app.name,
        graph.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn graph(file: &Path) -> Result<ExitCode, Failure> {
    let ws = Workspace::open(file, None)?;
    out!("{}", ws.graph()?.to_dot(&ws.manifest.manifest.app.name));
    Ok(ExitCode::SUCCESS)
}

fn state(file: &Path, state_path: Option<&Path>) -> Result<appgrid::state::State, Failure> {
    let ws = Workspace::open(file, state_path)?;
    ws.load_state()?.ok_or_else(|| {
        Failure::Message(format!(
            "no state at {}: nothing has been applied for {} yet",
            ws.store_path.display(),
            file.display()
        ))
    })
}

pub fn state_list(file: &Path, state_path: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let s = state(file, state_path)?;
    if json {
        let resources: Vec<serde_json::Value> = s
            .resources
            .iter()
            .map(|(address, r)| serde_json::json!({ "address": address.to_string(), "id": r.id }))
            .collect();
        let value = serde_json::json!({
            "app": s.app,
            "lineage": s.lineage,
            "serial": s.serial,
            "resources": resources,
        });
        outln!("{}", serde_json::to_string_pretty(&value).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    for (address, r) in &s.resources {
        outln!("{address}\t{}", r.id);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn state_show(
    file: &Path,
    address: &str,
    state_path: Option<&Path>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let address: ResourceAddress = address
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| e.to_string())?;
    let s = state(file, state_path)?;
    let r = s
        .resources
        .get(&address)
        .map(|r| r.redacted())
        .ok_or_else(|| format!("{address} is not in state; `appgrid state list` shows what is"))?;
    if json {
        let mut value = serde_json::to_value(&r).expect("state serializes");
        value["address"] = serde_json::Value::String(address.to_string());
        outln!("{}", serde_json::to_string_pretty(&value).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", show_text(&address, &r));
    Ok(ExitCode::SUCCESS)
}

pub fn forget_host_key(
    file: &Path,
    address: &str,
    state_path: Option<&Path>,
) -> Result<ExitCode, Failure> {
    use appgrid::roles::fleet_ssh::HOST_KEY;
    let address: ResourceAddress = address
        .parse()
        .map_err(|e: appgrid::graph::address::BadAddress| e.to_string())?;
    let ws = Workspace::open(file, state_path)?;
    let lock = ws.lock("state forget-host-key", std::time::Duration::from_secs(10))?;
    let mut s = state(file, state_path)?;
    let r = s
        .resources
        .get_mut(&address)
        .ok_or_else(|| format!("{address} is not in state; `appgrid state list` shows what is"))?;
    let Some(pin) = r.attributes.remove(HOST_KEY) else {
        outln!("{address} has no pinned host key");
        return Ok(ExitCode::SUCCESS);
    };
    ws.store()
        .fenced_by(&lock)
        .save(&mut s)
        .map_err(|e| Failure::Message(e.to_string()))?;
    lock.release();
    let fingerprint = russh::keys::PublicKey::from_openssh(&pin)
        .map(|k| appgrid::remote::ssh::fingerprint(&k))
        .unwrap_or(pin);
    outln!(
        "{address}: forgot the pinned host key {fingerprint}; the next apply pins the key it presents"
    );
    Ok(ExitCode::SUCCESS)
}

/// One resource as aligned `key  value` lines: id, dependencies, every
/// attribute (already redacted), and the spec it was made from.
fn show_text(address: &ResourceAddress, r: &appgrid::state::ResourceState) -> String {
    let width = r
        .attributes
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("depends_on".len());
    let mut out = format!("{address}\n");
    let mut line = |k: &str, v: &str| out.push_str(&format!("  {k:<width$}  {v}\n"));
    line("id", &r.id);
    let deps: Vec<String> = r.depends_on.iter().map(ToString::to_string).collect();
    line("depends_on", &deps.join(", "));
    for (k, v) in &r.attributes {
        line(k, v);
    }
    line(
        "spec",
        &serde_json::to_string(&r.spec).expect("specs serialize"),
    );
    out.trim_end().to_string()
}
