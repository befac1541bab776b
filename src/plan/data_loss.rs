//! Does a plan lose the app's data? The guard `apply` and `destroy` consult
//! before they change anything (issue 8: appgrid never loses data by itself).
//!
//! The data lives on the database origin, `db.primary`: a plan that deletes
//! or replaces it (a `destroy`, a manifest without `[database]`, a
//! destroy-first replacement) loses the data unless a backup is taken first.
//! Replicas hold copies, so removing a replica while the primary stays loses
//! nothing. A delete of a machine that is already gone (`prior_gone`) only
//! forgets it: there is nothing left to lose.
//!
//! Pure: takes the plan, returns the verdict.

use crate::graph::{ResourceAddress, Role};

use super::{ActionKind, Plan};

/// The database machines a plan would remove with the data on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLoss {
    /// `db.primary` first, then the replicas that go with it, in plan order.
    pub machines: Vec<ResourceAddress>,
}

impl DataLoss {
    /// `db.primary, db.replica[0]`
    pub fn names(&self) -> String {
        self.machines
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_database_machine(address: &ResourceAddress) -> bool {
    matches!(
        address,
        ResourceAddress::Instance {
            role: Role::DbPrimary | Role::DbReplica,
            ..
        }
    )
}

/// Whether the action takes the machine and its disk away.
fn removes(kind: ActionKind) -> bool {
    matches!(kind, ActionKind::Delete | ActionKind::Replace)
}

/// `Some` when `plan` deletes or replaces `db.primary` while it still exists.
pub fn data_loss(plan: &Plan) -> Option<DataLoss> {
    let primary = ResourceAddress::instance(Role::DbPrimary, 0);
    let loses_primary = plan
        .actions
        .iter()
        .any(|a| a.address == primary && removes(a.kind) && !a.prior_gone);
    if !loses_primary {
        return None;
    }
    let mut machines: Vec<ResourceAddress> = plan
        .actions
        .iter()
        .filter(|a| is_database_machine(&a.address) && removes(a.kind) && !a.prior_gone)
        .map(|a| a.address)
        .collect();
    machines.sort();
    machines.dedup();
    Some(DataLoss { machines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Action;

    fn action(address: ResourceAddress, kind: ActionKind, prior_gone: bool) -> Action {
        Action {
            address,
            kind,
            reason: "test".into(),
            prior: None,
            prior_gone,
            desired: None,
            depends_on: Vec::new(),
            create_before_destroy: false,
            changes: Vec::new(),
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        let manifest = crate::fixtures::manifest(1, Some(1), None);
        Plan {
            format_version: super::super::PLAN_FORMAT_VERSION,
            app: "blog".into(),
            manifest_path: "appgrid.toml".into(),
            manifest_sha256: String::new(),
            manifest,
            state_lineage: None,
            state_serial: 0,
            refreshed: true,
            actions,
            orphans: Vec::new(),
            notes: Vec::new(),
        }
    }

    const PRIMARY: ResourceAddress = ResourceAddress::Instance {
        role: Role::DbPrimary,
        index: 0,
    };
    const REPLICA: ResourceAddress = ResourceAddress::Instance {
        role: Role::DbReplica,
        index: 0,
    };
    const WEB: ResourceAddress = ResourceAddress::Instance {
        role: Role::Web,
        index: 0,
    };

    #[test]
    fn destroying_the_primary_names_every_database_machine_that_goes() {
        let p = plan(vec![
            action(WEB, ActionKind::Delete, false),
            action(REPLICA, ActionKind::Delete, false),
            action(PRIMARY, ActionKind::Delete, false),
        ]);
        let loss = data_loss(&p).expect("data loss");
        assert_eq!(loss.machines, vec![PRIMARY, REPLICA]);
        assert_eq!(loss.names(), "db.primary, db.replica[0]");
    }

    #[test]
    fn replacing_the_primary_loses_its_data() {
        let p = plan(vec![action(PRIMARY, ActionKind::Replace, false)]);
        assert_eq!(data_loss(&p).unwrap().machines, vec![PRIMARY]);
    }

    #[test]
    fn removing_a_replica_while_the_primary_stays_loses_nothing() {
        let p = plan(vec![
            action(REPLICA, ActionKind::Delete, false),
            action(PRIMARY, ActionKind::Update, false),
        ]);
        assert_eq!(data_loss(&p), None);
    }

    #[test]
    fn forgetting_a_primary_that_is_already_gone_loses_nothing() {
        let p = plan(vec![action(PRIMARY, ActionKind::Delete, true)]);
        assert_eq!(data_loss(&p), None);
    }

    #[test]
    fn creating_or_updating_loses_nothing() {
        let p = plan(vec![
            action(PRIMARY, ActionKind::Create, false),
            action(WEB, ActionKind::Delete, false),
        ]);
        assert_eq!(data_loss(&p), None);
    }
}
