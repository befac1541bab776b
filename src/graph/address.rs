//! Resource addresses: `keypair`, `sg.web`, `web[3]`, `db.primary`, `db.replica[1]`, `cache[0]`, `lb`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The machine roles appgrid knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Lb,
    Web,
    DbPrimary,
    DbReplica,
    Cache,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Lb,
        Role::Web,
        Role::DbPrimary,
        Role::DbReplica,
        Role::Cache,
    ];

    /// The firewall group a role's machines sit in (primary and replicas share `db`).
    pub fn group(self) -> Group {
        match self {
            Role::Lb => Group::Lb,
            Role::Web => Group::Web,
            Role::DbPrimary | Role::DbReplica => Group::Db,
            Role::Cache => Group::Cache,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Lb => "lb",
            Role::Web => "web",
            Role::DbPrimary => "db.primary",
            Role::DbReplica => "db.replica",
            Role::Cache => "cache",
        }
    }

    /// Roles with one machine have no index in their address.
    pub fn is_singleton(self) -> bool {
        matches!(self, Role::Lb | Role::DbPrimary)
    }

    /// What the configuration of a machine of this role is called in its address.
    pub fn config_part(self) -> &'static str {
        match self {
            Role::DbReplica => "subscription",
            Role::Web => "release",
            Role::Lb | Role::DbPrimary | Role::Cache => "config",
        }
    }
}

/// A security group: one per role family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Lb,
    Web,
    Db,
    Cache,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Lb, Group::Web, Group::Db, Group::Cache];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Lb => "lb",
            Group::Web => "web",
            Group::Db => "db",
            Group::Cache => "cache",
        }
    }
}

/// Where a resource lives in the graph and in state. Orders as written in plans:
/// key pair, groups, machines by role and index, then their configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceAddress {
    KeyPair,
    SecurityGroup(Group),
    Instance {
        role: Role,
        index: u32,
    },
    /// What runs on a machine: `db.primary.config`, `db.replica[1].subscription`,
    /// `cache[0].config`, `web[3].release`, `lb.config`.
    Config {
        role: Role,
        index: u32,
    },
    /// The Slony-I cluster, initialised on the primary.
    SlonyCluster,
}

impl ResourceAddress {
    pub fn instance(role: Role, index: u32) -> Self {
        ResourceAddress::Instance { role, index }
    }

    pub fn config(role: Role, index: u32) -> Self {
        ResourceAddress::Config { role, index }
    }

    /// The machine a configuration lives on (itself for a machine).
    pub fn machine(self) -> Option<ResourceAddress> {
        match self {
            ResourceAddress::Instance { .. } => Some(self),
            ResourceAddress::Config { role, index } => Some(ResourceAddress::instance(role, index)),
            ResourceAddress::SlonyCluster => Some(ResourceAddress::instance(Role::DbPrimary, 0)),
            _ => None,
        }
    }
}

impl fmt::Display for ResourceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceAddress::KeyPair => f.write_str("keypair"),
            ResourceAddress::SecurityGroup(g) => write!(f, "sg.{}", g.as_str()),
            ResourceAddress::Instance { role, index } if role.is_singleton() => {
                f.write_str(role.as_str())
            }
            ResourceAddress::Instance { role, index } => write!(f, "{}[{index}]", role.as_str()),
            ResourceAddress::Config { role, index } => {
                write!(
                    f,
                    "{}.{}",
                    ResourceAddress::instance(*role, *index),
                    role.config_part()
                )
            }
            ResourceAddress::SlonyCluster => f.write_str("slony.cluster"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a resource address; expected one like `web[0]`, `db.primary`, `db.replica[1]`, `cache[0]`, `lb`, `sg.web` or `keypair`"
)]
pub struct BadAddress(pub String);

impl FromStr for ResourceAddress {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAddress(s.to_string());
        if s == "keypair" {
            return Ok(ResourceAddress::KeyPair);
        }
        if s == "slony.cluster" {
            return Ok(ResourceAddress::SlonyCluster);
        }
        for part in [".config", ".subscription", ".release"] {
            if let Some(machine) = s.strip_suffix(part) {
                let Ok(ResourceAddress::Instance { role, index }) =
                    machine.parse::<ResourceAddress>()
                else {
                    return Err(bad());
                };
                if role.config_part() != &part[1..] {
                    return Err(bad());
                }
                return Ok(ResourceAddress::config(role, index));
            }
        }
        if let Some(g) = s.strip_prefix("sg.") {
            let group = Group::ALL
                .into_iter()
                .find(|x| x.as_str() == g)
                .ok_or_else(bad)?;
            return Ok(ResourceAddress::SecurityGroup(group));
        }
        let (name, index) = match s.strip_suffix(']').and_then(|r| r.split_once('[')) {
            Some((name, idx)) => {
                if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) || idx.len() > 9 {
                    return Err(bad());
                }
                (name, Some(idx.parse::<u32>().map_err(|_| bad())?))
            }
            None => (s, None),
        };
        let role = Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(bad)?;
        match (role.is_singleton(), index) {
            (true, None) => Ok(ResourceAddress::instance(role, 0)),
            (false, Some(i)) => Ok(ResourceAddress::instance(role, i)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for ResourceAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_and_parses() {
        for s in [
            "keypair",
            "sg.web",
            "sg.db",
            "web[3]",
            "db.primary",
            "db.replica[1]",
            "cache[0]",
            "lb",
        ] {
            let a: ResourceAddress = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "web",
            "lb[0]",
            "db.primary[1]",
            "web[]",
            "web[-1]",
            "sg.nope",
            "web[1",
            "x[1]",
        ] {
            assert!(
                s.parse::<ResourceAddress>().is_err(),
                "{s} should not parse"
            );
        }
    }

    proptest! {
        #[test]
        fn roundtrip(role in proptest::sample::select(Role::ALL.to_vec()), index in 0u32..100_000) {
            let a = ResourceAddress::instance(role, if role.is_singleton() { 0 } else { index });
            prop_assert_eq!(a.to_string().parse::<ResourceAddress>().unwrap(), a);
        }
    }
}
