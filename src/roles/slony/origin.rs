//! Which node a node believes is the set's origin: how a resumed online move
//! learns that its switchover already happened (the state write after MOVE
//! SET may have been lost).

use super::slonik::{count, scalar};
use super::{SET_ID, SlonyCluster};
use crate::remote::Remote;
use crate::roles::RoleError;
use crate::roles::postgres::PgNode;
use crate::templates::Templates;

/// The origin of the set as `node` sees it; `None` when the node holds no
/// Slony-I schema (it never joined) or no set.
pub async fn set_origin<R: Remote>(
    t: &Templates,
    cluster: &SlonyCluster,
    remote: &R,
    node: &PgNode,
) -> Result<Option<u32>, RoleError> {
    cluster.check()?;
    let joined = count(
        t,
        remote,
        node,
        &cluster.database,
        &format!(
            "select count(*) from pg_namespace where nspname = '_{}'",
            cluster.name
        ),
    )
    .await?;
    if joined == 0 {
        return Ok(None);
    }
    let seen = scalar(
        t,
        remote,
        node,
        &cluster.database,
        &format!(
            "select set_origin from {}.sl_set where set_id = {SET_ID}",
            cluster.schema_sql()
        ),
    )
    .await?;
    Ok(seen.trim().parse().ok())
}
