//! The state lock on S3, Terraform-1.10 style: no lock table, only
//! conditional writes on one object, `KEY.lock`.
//!
//! - Acquire: create the lock object with `If-None-Match: *`; exactly one
//!   of any number of racing creators succeeds.
//! - Renew (every third of the lease, from the lock's thread): rewrite it
//!   with `If-Match` on the ETag of our last write; a 412 means it was
//!   taken over, and the lock is lost.
//! - Take over a holder whose lease expired: rewrite with `If-Match` on the
//!   ETag read, so of two takers only one wins. The lease decides alone (the
//!   holder may be on any machine); an unreadable lock object is taken over
//!   once it has stayed the same for a whole lease.
//! - Release: delete with `If-Match` on our ETag (someone else's lock is
//!   never deleted).
//! - Fence: before every state write, the lock object must still name this
//!   acquisition; the write itself is conditional on the state's ETag
//!   ([`super::s3_store`]), so a writer that lost the lock between the check
//!   and the write cannot overwrite a newer state either.
//!
//! Leases compare wall clocks (whole unix seconds) across machines, as
//! Terraform's do: clocks must agree to well within a lease.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::location::S3Location;
use super::lock::{LockError, LockHolder, StateLock, TakeoverReason, lease_seconds, unix_now};
use super::s3::{S3Objects, Write, Written};
use super::s3_store::objects;

/// The lock object of one acquisition: where it is and the ETag of our
/// last write of it.
#[derive(Debug)]
pub(super) struct RemoteLock {
    objects: S3Objects,
    key: String,
    etag: Mutex<String>,
}

impl RemoteLock {
    /// Rewrites the lock with `renewed` if it is still our last write:
    /// `Ok(false)` when someone else's write replaced it.
    pub(super) fn renew(&self, renewed: &LockHolder) -> Result<bool, LockError> {
        let mut etag = self.etag.lock().expect("lock etag");
        match self
            .objects
            .put(&self.key, &holder_json(renewed), Write::Replace(&etag))?
        {
            Written::Done(new) => {
                *etag = new;
                Ok(true)
            }
            Written::Precondition => Ok(false),
        }
    }

    /// Deletes the lock if it is still our last write.
    pub(super) fn release(&self) {
        let etag = self.etag.lock().expect("lock etag").clone();
        let _ = self.objects.delete(&self.key, Some(&etag));
    }

    /// `Ok(None)` while the lock object names `holder`'s acquisition;
    /// otherwise who holds it now (if anyone, and readable).
    pub(super) fn check(
        &self,
        holder: &LockHolder,
    ) -> Result<Option<Option<LockHolder>>, LockError> {
        match self.objects.get(&self.key)? {
            None => Ok(Some(None)),
            Some(object) => match serde_json::from_slice::<LockHolder>(&object.bytes) {
                Ok(h) if h.same_acquisition(holder) => Ok(None),
                Ok(h) => Ok(Some(Some(h))),
                Err(_) => Ok(Some(None)),
            },
        }
    }
}

fn holder_json(holder: &LockHolder) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(holder).expect("a lock holder always serializes");
    json.push(b'\n');
    json
}

/// The user running appgrid: `$USER`, `$LOGNAME`, or the uid.
fn user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid{}", rustix::process::getuid().as_raw()))
}

/// Acquires the lock of the state at `location`, waiting up to `timeout`
/// for a live holder; `lease` as for the file lock.
///
/// First it checks, without writing, that these credentials may write the
/// state and its backups ([`S3Objects::check_writable`]): a key without
/// permission stops the command here, before anything changes, not at the
/// first state write after machines were launched.
pub fn acquire(
    location: &S3Location,
    operation: &str,
    timeout: Duration,
    lease: Duration,
) -> Result<StateLock, LockError> {
    let objects = objects(location)?;
    objects.check_writable(&location.key)?;
    objects.check_writable(&location.backup_key(0))?;
    let key = location.lock_key();
    let url = format!("s3://{}/{key}", location.bucket);
    let host = super::lock::hostname();
    let user = user();
    let lease_secs = lease_seconds(lease);
    let start = Instant::now();
    // An unreadable lock object: its ETag and since when we have seen it.
    let mut unreadable: Option<(String, Instant)> = None;

    loop {
        let now = unix_now();
        let me = LockHolder {
            pid: std::process::id(),
            host: host.clone(),
            operation: operation.to_string(),
            acquired_at: now,
            lease_until: now + lease_secs,
            nonce: format!("{:016x}", fastrand::u64(..)),
            pid_started: None,
            user: Some(user.clone()),
        };
        let remote = |etag: String| RemoteLock {
            objects: objects.clone(),
            key: key.clone(),
            etag: Mutex::new(etag),
        };
        if let Written::Done(etag) = objects.put(&key, &holder_json(&me), Write::Create)? {
            return Ok(StateLock::start_remote(
                url,
                me,
                None,
                None,
                lease,
                remote(etag),
            ));
        }
        let Some(object) = objects.get(&key)? else {
            // Released between our create and our read: try again at once.
            continue;
        };
        let blocker = match serde_json::from_slice::<LockHolder>(&object.bytes) {
            Ok(holder) if now > holder.lease_until => {
                match objects.put(&key, &holder_json(&me), Write::Replace(&object.etag))? {
                    Written::Done(etag) => {
                        return Ok(StateLock::start_remote(
                            url,
                            me,
                            Some(TakeoverReason::LeaseExpired),
                            Some(holder),
                            lease,
                            remote(etag),
                        ));
                    }
                    Written::Precondition => continue,
                }
            }
            Ok(holder) => Err(holder),
            Err(e) => {
                let since = match &unreadable {
                    Some((etag, since)) if *etag == object.etag => *since,
                    _ => {
                        unreadable = Some((object.etag.clone(), Instant::now()));
                        Instant::now()
                    }
                };
                if since.elapsed() > lease {
                    match objects.put(&key, &holder_json(&me), Write::Replace(&object.etag))? {
                        Written::Done(etag) => {
                            let reason = TakeoverReason::Unreadable {
                                detail: e.to_string(),
                            };
                            return Ok(StateLock::start_remote(
                                url,
                                me,
                                Some(reason),
                                None,
                                lease,
                                remote(etag),
                            ));
                        }
                        Written::Precondition => continue,
                    }
                }
                Ok(e.to_string())
            }
        };

        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(match blocker {
                Err(holder) => LockError::HeldRemote {
                    // The state it guards, as users name it.
                    url: location.to_string(),
                    holder: Box::new(holder),
                    waited: timeout,
                },
                Ok(detail) => LockError::Unreadable {
                    path: url.into(),
                    detail,
                    waited: timeout,
                    lease,
                },
            });
        }
        let poll = Duration::from_millis(fastrand::u64(200..=500));
        std::thread::sleep(poll.min(timeout - elapsed));
    }
}

/// The holder of the lock at `location`, if any (for `state unlock`).
pub fn current(location: &S3Location) -> Result<Option<(LockHolder, String)>, LockError> {
    let objects = objects(location)?;
    Ok(match objects.get(&location.lock_key())? {
        None => None,
        Some(o) => serde_json::from_slice::<LockHolder>(&o.bytes)
            .ok()
            .map(|h| (h, o.etag)),
    })
}

/// Removes the lock at `location` if it is still the version `etag` read
/// by [`current`]: `Ok(false)` if it changed meanwhile.
pub fn remove(location: &S3Location, etag: &str) -> Result<bool, LockError> {
    let objects = objects(location)?;
    Ok(objects.delete(&location.lock_key(), Some(etag))? == Written::Done(String::new()))
}
