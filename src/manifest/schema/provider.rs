//! `[provider]`: where machines come from and how appgrid reaches them.

use std::collections::HashSet;

use super::Checker;
use super::cidr;
use super::names;
use super::table::{Field, Key, Reported, Section, TableSpec};
use crate::manifest::{Provider, ProviderKind};

pub(super) const PROVIDER: TableSpec = TableSpec {
    name: "provider",
    label: "[provider]",
    keys: &[
        Key::required("kind", "\"local\""),
        Key::optional("region", "\"us-east-1\""),
        Key::optional("zones", "[\"us-east-1a\", \"us-east-1b\"]"),
        Key::optional("image", "\"debian-12\""),
        Key::optional("ssh_user", "\"admin\""),
        Key::optional("ssh_key", "\"~/.ssh/id_ed25519\""),
        Key::optional("ssh_from", "[\"203.0.113.0/24\"]"),
        Key::optional("endpoint", "\"http://127.0.0.1:5000\""),
        Key::optional("hosts", "[\"10.0.0.11\", \"10.0.0.12:2222\"]"),
        Key::optional("proxy_command", "\"ssh -W %h:%p bastion\""),
        Key::optional("jump_host", "\"bastion.example.com:22\""),
        Key::optional("configure", "true"),
    ],
};

/// Keys that only one kind of provider reads.
const AWS_ONLY: &[&str] = &["region", "zones", "image", "ssh_from", "endpoint"];

pub(super) fn check(ck: &mut Checker, s: &Section) -> Result<Provider, Reported> {
    let kind = s.require(ck, "kind").and_then(|f| kind(ck, f))?;
    if kind != ProviderKind::Aws {
        for key in AWS_ONLY {
            if let Some(f) = s.field(key) {
                ck.error(
                    f.span(),
                    format!("`{key}` is only read by the \"aws\" provider"),
                    "remove it, or set `kind = \"aws\"`",
                );
            }
        }
    }
    if kind != ProviderKind::Hosts
        && let Some(f) = s.field("hosts")
    {
        ck.error(
            f.span(),
            "`hosts` is only read by the \"hosts\" provider",
            "remove it, or set `kind = \"hosts\"`",
        );
    }
    let remote = kind != ProviderKind::Local;
    let ssh_user = match s.field("ssh_user") {
        Some(f) => ssh_user(ck, f),
        None => Ok("admin".to_string()),
    };
    let ssh_key = if remote {
        s.require(ck, "ssh_key").and_then(|f| ssh_key(ck, f))
    } else {
        Ok(String::new())
    };
    let proxy_command = s
        .field("proxy_command")
        .map(|f| proxy_command(ck, f))
        .transpose();
    let jump_host = s.field("jump_host").map(|f| host_entry(ck, f)).transpose();
    let configure = match s.field("configure") {
        Some(f) => f.bool(ck),
        None => Ok(true),
    };
    let hosts = match kind {
        ProviderKind::Hosts => s.require(ck, "hosts").and_then(|f| hosts(ck, f)),
        _ => Ok(Vec::new()),
    };
    let (region, zones, image, ssh_from, endpoint) = if kind == ProviderKind::Aws {
        let region = s.require(ck, "region").and_then(|f| region(ck, f));
        let zones = match s.field("zones") {
            Some(f) => zones(ck, f, region.as_deref().ok()),
            None => Ok(match &region {
                Ok(r) => ["a", "b", "c"].iter().map(|z| format!("{r}{z}")).collect(),
                Err(_) => Vec::new(),
            }),
        };
        let image = s.require(ck, "image").and_then(|f| image(ck, f));
        let ssh_from = s.require(ck, "ssh_from").and_then(|f| cidrs(ck, f));
        let endpoint = s.field("endpoint").map(|f| endpoint(ck, f)).transpose();
        (region, zones, image, ssh_from, endpoint)
    } else {
        // One "zone": the machine itself, or the pool.
        let place = if kind == ProviderKind::Local {
            "local"
        } else {
            "hosts"
        };
        (
            Ok(place.to_string()),
            Ok(vec![place.to_string()]),
            Ok(String::new()),
            Ok(Vec::new()),
            Ok(None),
        )
    };
    Ok(Provider {
        kind,
        region: region?,
        zones: zones?,
        image: image?,
        ssh_user: ssh_user?,
        ssh_key: ssh_key?,
        ssh_from: ssh_from?,
        endpoint: endpoint?,
        hosts: hosts?,
        proxy_command: proxy_command?,
        jump_host: jump_host?,
        configure: configure?,
    })
}

fn kind(ck: &mut Checker, f: Field) -> Result<ProviderKind, Reported> {
    match f.str(ck)? {
        "aws" => Ok(ProviderKind::Aws),
        "local" => Ok(ProviderKind::Local),
        "hosts" => Ok(ProviderKind::Hosts),
        other => Err(ck.error(
            f.span(),
            format!("unknown provider kind {other:?}"),
            "expected one of: \"aws\", \"local\", \"hosts\"",
        )),
    }
}

/// `addr` or `addr:port`, where addr is an IPv4 address or a DNS name.
fn host_entry(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let entry = f.str(ck)?;
    if names::host_entry(entry) {
        return Ok(entry.to_string());
    }
    Err(ck.error(
        f.span(),
        format!(
            "`{}` must be a host name or IPv4 address with an optional :port, found {entry:?}",
            f.key()
        ),
        "e.g. \"10.0.0.11\", \"db1.example.com\" or \"10.0.0.12:2222\"",
    ))
}

fn hosts(ck: &mut Checker, f: Field) -> Result<Vec<String>, Reported> {
    let written = f.strings(ck)?;
    if written.is_empty() {
        return Err(ck.error(
            f.span(),
            "`hosts` must not be empty",
            "list the SSH addresses of the machines appgrid may use, e.g. `hosts = [\"10.0.0.11\"]`",
        ));
    }
    let mut seen = HashSet::new();
    let mut result = Ok(());
    for h in &written {
        let entry = *h.get_ref();
        if !names::host_entry(entry) {
            result = Err(ck.error(
                h.span(),
                format!("`hosts` entry {entry:?} must be a host name or IPv4 address with an optional :port"),
                "e.g. \"10.0.0.11\", \"db1.example.com\" or \"10.0.0.12:2222\"",
            ));
        } else if !seen.insert(entry) {
            result = Err(ck.error(
                h.span(),
                format!("`hosts` lists {entry:?} more than once"),
                "remove the repeated host",
            ));
        }
    }
    result.map(|()| written.iter().map(|h| h.get_ref().to_string()).collect())
}

fn proxy_command(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let command = f.str(ck)?;
    if command.trim().is_empty() || command.contains(['\0', '\n', '\r']) {
        return Err(ck.error(
            f.span(),
            "`proxy_command` must be one non-empty line",
            "e.g. `proxy_command = \"ssh -W %h:%p bastion\"` (%h host, %p port, %i instance id; each is shell-quoted)",
        ));
    }
    Ok(command.to_string())
}

fn region(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let region = f.str(ck)?;
    if names::region(region) {
        return Ok(region.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`region` must be an AWS region code, found {region:?}"),
        "use lowercase letters, digits and '-', e.g. `region = \"us-east-1\"`",
    ))
}

/// `region` is `None` when it is itself invalid; zones are then only
/// checked for shape.
fn zones(ck: &mut Checker, f: Field, region: Option<&str>) -> Result<Vec<String>, Reported> {
    let written = f.strings(ck)?;
    if written.is_empty() {
        return Err(ck.error(
            f.span(),
            "`zones` must not be empty",
            "list at least one zone, e.g. `zones = [\"us-east-1a\"]`, or remove the key to \
             use zones a, b and c of the region",
        ));
    }
    let mut seen = HashSet::new();
    let mut result = Ok(());
    for zone in &written {
        let name = *zone.get_ref();
        let problem = if !names::zone(name) {
            Some((
                format!("zone {name:?} must be lowercase letters, digits and '-'"),
                "write zones as the region followed by a letter, e.g. \"us-east-1a\"".to_string(),
            ))
        } else if let Some(region) =
            region.filter(|r| name.len() <= r.len() || !name.starts_with(r))
        {
            Some((
                format!("zone {name:?} is not in region {region:?}"),
                format!("zones of {region} are named like \"{region}a\""),
            ))
        } else if !seen.insert(name) {
            Some((
                format!("zone {name:?} is listed more than once"),
                "remove the repeated zone".to_string(),
            ))
        } else {
            None
        };
        if let Some((message, help)) = problem {
            result = Err(ck.error(zone.span(), message, help));
        }
    }
    result.map(|()| written.iter().map(|z| z.get_ref().to_string()).collect())
}

fn image(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let image = f.str(ck)?;
    if image.starts_with("ami-") {
        if names::ami_id(image) {
            return Ok(image.to_string());
        }
        return Err(ck.error(
            f.span(),
            format!("`image` {image:?} is not a valid AMI id"),
            "an AMI id is `ami-` followed by hex digits, e.g. `image = \"ami-0abcdef1234567890\"`",
        ));
    }
    if names::image_name(image) {
        return Ok(image.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`image` must be an AMI id or an image name, found {image:?}"),
        "use an id like \"ami-0abcdef1234567890\" or a name of a-z, 0-9, '.', '_' and '-', \
         e.g. `image = \"debian-12\"`",
    ))
}

fn ssh_user(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let user = f.str(ck)?;
    if names::unix_user(user) {
        return Ok(user.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`ssh_user` must be a Unix user name, found {user:?}"),
        "use up to 32 lowercase letters, digits, '_' and '-', starting with a letter or '_', \
         e.g. `ssh_user = \"admin\"`",
    ))
}

fn ssh_key(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let key = f.str(ck)?;
    let problem = if key.is_empty() {
        "`ssh_key` must not be empty"
    } else if key.contains(['\0', '\n', '\r']) {
        "`ssh_key` must be a single-line path without NUL characters"
    } else {
        return Ok(key.to_string());
    };
    Err(ck.error(f.span(), problem, f.example_help()))
}

/// A non-empty array of IPv4 CIDR blocks; also used for `allow_from`.
pub(super) fn cidrs(ck: &mut Checker, f: Field) -> Result<Vec<String>, Reported> {
    let written = f.strings(ck)?;
    if written.is_empty() {
        return Err(ck.error(
            f.span(),
            format!("`{}` must not be empty", f.key()),
            format!("list at least one CIDR block, {}", f.example_help()),
        ));
    }
    let mut result = Ok(());
    for cidr in &written {
        if let Err(why) = cidr::ipv4_cidr(cidr.get_ref()) {
            result = Err(ck.error(
                cidr.span(),
                format!(
                    "`{}` entry {:?} is not an IPv4 CIDR block: {why}",
                    f.key(),
                    cidr.get_ref()
                ),
                "write an address and a prefix length, e.g. \"203.0.113.0/24\", \
                 or \"0.0.0.0/0\" for anywhere",
            ));
        }
    }
    result.map(|()| written.iter().map(|c| c.get_ref().to_string()).collect())
}

fn endpoint(ck: &mut Checker, f: Field) -> Result<String, Reported> {
    let url = f.str(ck)?;
    if names::http_url(url) {
        return Ok(url.to_string());
    }
    Err(ck.error(
        f.span(),
        format!("`endpoint` must be an http:// or https:// URL, found {url:?}"),
        f.example_help(),
    ))
}
