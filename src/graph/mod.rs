//! The resource graph: a validated [`Manifest`] expanded into every resource
//! appgrid manages and the order they depend on each other.
//!
//! Pure: no I/O. Invariants: addresses are unique; every edge points from a
//! dependency to its dependent; the graph is acyclic (checked in [`expand`]).

pub mod address;
mod config;
mod dot;
pub mod spec;

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};

pub use address::{Group, ResourceAddress, Role};
pub use config::Inputs;
pub use spec::{
    ConfigSpec, IngressRule, InstanceSpec, KeyPairSpec, ResourceSpec, RuleSource, SecurityGroupSpec,
};

use crate::manifest::Manifest;
use crate::templates::{TemplateError, Templates};

/// One managed resource: where it lives and what it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub address: ResourceAddress,
    pub spec: ResourceSpec,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("dependency cycle through {0}")]
    Cycle(ResourceAddress),
}

/// Resources and their dependency edges (dependency → dependent).
#[derive(Debug, Clone, Default)]
pub struct ResourceGraph {
    graph: DiGraph<Resource, ()>,
    index: BTreeMap<ResourceAddress, NodeIndex>,
}

impl ResourceGraph {
    fn add(&mut self, address: ResourceAddress, spec: ResourceSpec) {
        let node = self.graph.add_node(Resource { address, spec });
        let previous = self.index.insert(address, node);
        debug_assert!(previous.is_none(), "duplicate address {address}");
    }

    /// Add an edge. Each pair is added once by construction: `add_edge` is O(1),
    /// where `update_edge` would scan the key pair's 10,000 edges each time.
    fn depend(&mut self, dependent: ResourceAddress, dependency: ResourceAddress) {
        if let (Some(&a), Some(&b)) = (self.index.get(&dependency), self.index.get(&dependent)) {
            debug_assert!(
                self.graph.find_edge(a, b).is_none(),
                "{dependency} -> {dependent} twice"
            );
            self.graph.add_edge(a, b, ());
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn get(&self, address: &ResourceAddress) -> Option<&Resource> {
        self.index.get(address).map(|&n| &self.graph[n])
    }

    /// Every resource, in address order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.index.values().map(|&n| &self.graph[n])
    }

    /// What `address` needs to exist first, in address order.
    pub fn dependencies(&self, address: &ResourceAddress) -> Vec<ResourceAddress> {
        let Some(&n) = self.index.get(address) else {
            return Vec::new();
        };
        let mut deps: Vec<_> = self
            .graph
            .neighbors_directed(n, petgraph::Direction::Incoming)
            .map(|d| self.graph[d].address)
            .collect();
        deps.sort();
        deps
    }

    /// Every address, dependencies before dependents.
    pub fn topological(&self) -> Vec<ResourceAddress> {
        petgraph::algo::toposort(&self.graph, None)
            .expect("expand rejects cycles")
            .into_iter()
            .map(|n| self.graph[n].address)
            .collect()
    }

    /// All edges as (dependency, dependent), sorted.
    pub fn edges(&self) -> Vec<(ResourceAddress, ResourceAddress)> {
        let mut edges: Vec<_> = self
            .graph
            .raw_edges()
            .iter()
            .map(|e| {
                (
                    self.graph[e.source()].address,
                    self.graph[e.target()].address,
                )
            })
            .collect();
        edges.sort();
        edges
    }

    /// The graph in Graphviz DOT.
    pub fn to_dot(&self, app: &str) -> String {
        dot::render(self, app)
    }
}

/// Name of the key pair and security groups for `app`.
pub fn key_pair_name(app: &str) -> String {
    format!("appgrid-{app}")
}

pub fn group_name(app: &str, group: Group) -> String {
    format!("appgrid-{app}-{}", group.as_str())
}

const SSH_PORT: u16 = 22;

/// Expand a manifest into its resource graph, with the embedded templates and
/// no release digest (enough for everything but configuration inputs).
pub fn expand(m: &Manifest) -> Result<ResourceGraph, GraphError> {
    expand_with(m, &Inputs::default(), &Templates::embedded())
}

/// Expand a manifest into its resource graph; machines' user data is
/// rendered from `templates` (the workspace's: embedded or the project's own).
pub fn expand_with(
    m: &Manifest,
    inputs: &Inputs,
    templates: &Templates,
) -> Result<ResourceGraph, GraphError> {
    let app = &m.app.name;
    let mut g = ResourceGraph::default();
    // Key pairs and security groups exist only where the provider has them.
    if m.provider.kind == crate::manifest::ProviderKind::Aws {
        add_key_and_groups(&mut g, m);
    }

    let zones = &m.provider.zones;
    let mut instances: Vec<(Role, u32, &str, usize)> = vec![
        (Role::Lb, 1, &m.load_balancer.instance_type, 0),
        (Role::Web, m.web.count, &m.web.instance_type, 0),
    ];
    if let Some(db) = &m.database {
        instances.push((Role::DbPrimary, 1, &db.instance_type, 0));
        // Replicas start one zone over, so the first replica never shares the primary's zone.
        instances.push((Role::DbReplica, db.replicas, &db.instance_type, 1));
    }
    if let Some(cache) = &m.cache {
        instances.push((Role::Cache, cache.nodes, &cache.instance_type, 0));
    }
    for (role, count, instance_type, zone_offset) in instances {
        let mut ctx = tera::Context::new();
        ctx.insert("app", app);
        ctx.insert("role", role.as_str());
        ctx.insert("ssh_user", &m.provider.ssh_user);
        let user_data = templates.render("user-data.sh", &ctx)?;
        for index in 0..count {
            let address = ResourceAddress::instance(role, index);
            let zone = zones[(index as usize + zone_offset) % zones.len()].clone();
            g.add(
                address,
                ResourceSpec::Instance(InstanceSpec {
                    role,
                    instance_type: instance_type.to_string(),
                    image: m.provider.image.clone(),
                    zone,
                    key_name: key_pair_name(app),
                    group: role.group(),
                    user_data: user_data.clone(),
                }),
            );
            g.depend(address, ResourceAddress::KeyPair);
            g.depend(address, ResourceAddress::SecurityGroup(role.group()));
            if role == Role::DbReplica {
                g.depend(address, ResourceAddress::instance(Role::DbPrimary, 0));
            }
        }
    }

    if m.provider.configure {
        config::add(&mut g, m, inputs);
    }

    if let Err(cycle) = petgraph::algo::toposort(&g.graph, None) {
        return Err(GraphError::Cycle(g.graph[cycle.node_id()].address));
    }
    Ok(g)
}

/// The key pair and one least-privilege security group per role family.
fn add_key_and_groups(g: &mut ResourceGraph, m: &Manifest) {
    let app = &m.app.name;
    let ssh_rules = || {
        m.provider.ssh_from.iter().map(|c| IngressRule {
            port: SSH_PORT,
            from: RuleSource::Cidr(c.clone()),
        })
    };
    let cidr_rules = |port: u16, cidrs: &[String]| -> Vec<IngressRule> {
        cidrs
            .iter()
            .map(|c| IngressRule {
                port,
                from: RuleSource::Cidr(c.clone()),
            })
            .collect()
    };

    g.add(
        ResourceAddress::KeyPair,
        ResourceSpec::KeyPair(KeyPairSpec {
            name: key_pair_name(app),
            public_key_path: format!("{}.pub", m.provider.ssh_key),
        }),
    );

    // Least privilege: each group admits exactly the traffic its role serves.
    let mut groups: Vec<(Group, Vec<IngressRule>, &str)> = vec![
        (
            Group::Lb,
            cidr_rules(m.load_balancer.listen, &m.load_balancer.allow_from),
            "load balancer: HTTP from the configured CIDRs",
        ),
        (
            Group::Web,
            vec![IngressRule {
                port: m.web.port,
                from: RuleSource::Group(Group::Lb),
            }],
            "web: the app port from the load balancer only",
        ),
    ];
    if let Some(db) = &m.database {
        groups.push((
            Group::Db,
            vec![
                IngressRule {
                    port: db.port,
                    from: RuleSource::Group(Group::Web),
                },
                IngressRule {
                    port: db.port,
                    from: RuleSource::Group(Group::Db),
                },
            ],
            "database: Postgres from web and the other database nodes only",
        ));
    }
    if let Some(cache) = &m.cache {
        groups.push((
            Group::Cache,
            vec![IngressRule {
                port: cache.port,
                from: RuleSource::Group(Group::Web),
            }],
            "cache: memcached from web only",
        ));
    }
    for (group, mut rules, description) in groups {
        rules.extend(ssh_rules());
        rules.sort();
        rules.dedup();
        let address = ResourceAddress::SecurityGroup(group);
        g.add(
            address,
            ResourceSpec::SecurityGroup(SecurityGroupSpec {
                name: group_name(app, group),
                description: format!("appgrid {app} {description}; SSH from ssh_from"),
                rules,
            }),
        );
    }
    for group in Group::ALL {
        let address = ResourceAddress::SecurityGroup(group);
        let Some(Resource {
            spec: ResourceSpec::SecurityGroup(spec),
            ..
        }) = g.get(&address).cloned()
        else {
            continue;
        };
        let sources: std::collections::BTreeSet<Group> = spec
            .rules
            .iter()
            .filter_map(|rule| match rule.from {
                RuleSource::Group(source) if source != group => Some(source),
                _ => None,
            })
            .collect();
        for source in sources {
            g.depend(address, ResourceAddress::SecurityGroup(source));
        }
    }
}

#[cfg(test)]
mod tests;
