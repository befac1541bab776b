//! What each resource should look like: the desired spec that plans compare.

use serde::{Deserialize, Serialize};

use super::address::{Group, Role};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResourceSpec {
    KeyPair(KeyPairSpec),
    SecurityGroup(SecurityGroupSpec),
    Instance(InstanceSpec),
    Config(ConfigSpec),
}

impl ResourceSpec {
    /// A stable digest of the spec: equal specs, equal hashes, across versions of appgrid
    /// that keep the serialized form.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("specs always serialize");
        crate::hash::sha256_hex(&json)[..16].to_string()
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            ResourceSpec::KeyPair(_) => "key pair",
            ResourceSpec::SecurityGroup(_) => "security group",
            ResourceSpec::Instance(_) => "instance",
            ResourceSpec::Config(_) => "configuration",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPairSpec {
    pub name: String,
    /// Path of the public key file, as the manifest wrote it (plus `.pub`).
    pub public_key_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupSpec {
    pub name: String,
    pub description: String,
    pub rules: Vec<IngressRule>,
}

/// One TCP ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IngressRule {
    pub port: u16,
    pub from: RuleSource,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    Cidr(String),
    Group(Group),
}

impl std::fmt::Display for IngressRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.from {
            RuleSource::Cidr(c) => write!(f, "tcp/{} from {c}", self.port),
            RuleSource::Group(g) => write!(f, "tcp/{} from sg.{}", self.port, g.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub role: Role,
    pub instance_type: String,
    /// Image name or `ami-…`, as the manifest wrote it.
    pub image: String,
    pub zone: String,
    pub key_name: String,
    pub group: Group,
    /// The rendered user-data script (no secrets go here).
    pub user_data: String,
}

impl InstanceSpec {
    /// Instances with equal launch keys can share one RunInstances call.
    pub fn launch_key(&self) -> (Role, &str, &str, &str, &str) {
        (
            self.role,
            &self.instance_type,
            &self.image,
            &self.zone,
            &self.user_data,
        )
    }
}

/// Configuration on a machine (or the Slony cluster). What runs is decided by
/// the address; `inputs` is everything that, when it changes, means the
/// configuration must be applied again: digests of the templates it renders,
/// ports, the peers it knows by address, the release's content digest. No
/// secrets: generated passwords live in state attributes, redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSpec {
    pub inputs: std::collections::BTreeMap<String, String>,
}
