//! Runs a piece of work only while this hub holds its lease.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::{Grant, Lease};

/// Runs `work` each time `lease` is granted, until `cancel` fires: `work`
/// gets the grant and a token that is cancelled when the lease is
/// withdrawn (given up, lost or run out) or `cancel` fires, and must end
/// soon after. The next grant waits until it has ended, so at most one
/// `work` of a lease runs at a time on this hub; the lease is given up
/// only once it has ended.
pub async fn run_while_owned<F, Fut>(lease: Lease, cancel: CancellationToken, mut work: F)
where
    F: FnMut(Grant, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut grants = lease.grants();
    loop {
        let grant = loop {
            let current = grants.borrow_and_update().clone();
            if let Some(grant) = current {
                break grant;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = grants.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        };
        let epoch = grant.epoch;
        let token = cancel.child_token();
        let running = work(grant, token.clone());
        let mut running = std::pin::pin!(running);
        let mut ended_by_itself = false;
        loop {
            tokio::select! {
                () = &mut running => {
                    ended_by_itself = !token.is_cancelled();
                    break;
                }
                changed = grants.changed() => {
                    let still = changed.is_ok()
                        && grants.borrow().as_ref().is_some_and(|grant| grant.epoch == epoch);
                    if !still {
                        token.cancel();
                        running.as_mut().await;
                        break;
                    }
                }
            }
        }
        lease.stopped(epoch);
        if cancel.is_cancelled() {
            return;
        }
        if ended_by_itself {
            // Not again under the same grant.
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = grants.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
