//! Whether the user behind a valid token still exists: asked of the auth service and cached
//! for a few seconds (answers both ways), so a deleted user's tokens stop working within the
//! cache's lifetime without a remote call per request.
//!
//! The question has its own short budget (`[gateway] user_check_timeout_millis`, 500 ms), far
//! below a client's patience, and a documented policy for when auth cannot answer in time
//! (`[gateway] user_check_unanswered`): `allow` (the default) lets the token's verified
//! signature stand, counts the request on `emporium_gateway_user_check_unanswered_total` and
//! logs a warning; `refuse` answers 503 `auth_unavailable`. The default is `allow` because the
//! token itself was just verified (signature, issuer, audience, expiry): the only thing an
//! outage of auth can hide is a deletion younger than the token's short lifetime, whereas
//! `refuse` turns an auth outage into an outage of every signed-in route.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use emporium_cluster::ServiceRef;
use emporium_contracts::auth::CheckUserActive;
use emporium_runtime::CallMeta;
use parking_lot::RwLock;

use crate::settings::UnansweredUserCheck;

/// Most users remembered.
const CAPACITY: usize = 100_000;

/// What the gateway concludes about a token's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCheck {
    /// The user exists (or auth could not answer and the policy is `allow`).
    Active,
    /// The user was deleted.
    Gone,
    /// Auth could not answer in time and the policy is `refuse`.
    Unanswered,
}

/// The cache of user activity.
pub struct ActiveUsers {
    auth: ServiceRef,
    ttl: Duration,
    budget: Duration,
    when_unanswered: UnansweredUserCheck,
    answers: RwLock<HashMap<String, (bool, Instant)>>,
}

impl ActiveUsers {
    /// A cache keeping answers of `auth` for `ttl`; one question may take `budget`, and
    /// `when_unanswered` decides when it takes longer or fails.
    pub fn new(auth: ServiceRef, ttl: Duration, budget: Duration, when_unanswered: UnansweredUserCheck) -> Self {
        ActiveUsers { auth, ttl, budget, when_unanswered, answers: RwLock::default() }
    }

    /// Whether `user_id` may act (see the module's policy when auth cannot answer).
    pub async fn check(&self, user_id: &str, meta: &CallMeta) -> UserCheck {
        if let Some((active, at)) = self.answers.read().get(user_id)
            && at.elapsed() < self.ttl
        {
            return if *active { UserCheck::Active } else { UserCheck::Gone };
        }
        let budget = Instant::now() + self.budget;
        let meta = CallMeta {
            deadline: Some(meta.deadline.map_or(budget, |deadline| deadline.min(budget))),
            trace: meta.trace,
        };
        match self.auth.ask_with(CheckUserActive { user_id: user_id.to_string() }, meta).await {
            Ok(active) => {
                let mut answers = self.answers.write();
                if answers.len() >= CAPACITY {
                    answers.clear();
                }
                answers.insert(user_id.to_string(), (active, Instant::now()));
                if active { UserCheck::Active } else { UserCheck::Gone }
            }
            Err(error) => {
                metrics::counter!(
                    "emporium_gateway_user_check_unanswered_total",
                    "policy" => self.when_unanswered.as_str()
                )
                .increment(1);
                match self.when_unanswered {
                    UnansweredUserCheck::Allow => {
                        tracing::warn!(code = %error.code, "auth did not confirm the user in time; the verified token stands (user_check_unanswered = allow)");
                        UserCheck::Active
                    }
                    UnansweredUserCheck::Refuse => {
                        tracing::warn!(code = %error.code, "auth did not confirm the user in time; refused (user_check_unanswered = refuse)");
                        UserCheck::Unanswered
                    }
                }
            }
        }
    }
}
