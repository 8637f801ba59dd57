//! Whether the user behind a valid token still exists: asked of the auth service and cached
//! for a few seconds (answers both ways), so a deleted user's tokens stop working within the
//! cache's lifetime without a remote call per request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use emporium_cluster::ServiceRef;
use emporium_contracts::auth::CheckUserActive;
use emporium_runtime::CallMeta;
use parking_lot::RwLock;

/// Most users remembered.
const CAPACITY: usize = 100_000;

/// The cache of user activity.
pub struct ActiveUsers {
    auth: ServiceRef,
    ttl: Duration,
    answers: RwLock<HashMap<String, (bool, Instant)>>,
}

impl ActiveUsers {
    /// A cache keeping answers of `auth` for `ttl`.
    pub fn new(auth: ServiceRef, ttl: Duration) -> Self {
        ActiveUsers { auth, ttl, answers: RwLock::default() }
    }

    /// Whether `user_id` may act. When the auth service cannot answer, the token's signature
    /// stands (fail open) and a warning is logged: availability over a few seconds of delay
    /// in seeing a deletion.
    pub async fn is_active(&self, user_id: &str, meta: CallMeta) -> bool {
        if let Some((active, at)) = self.answers.read().get(user_id)
            && at.elapsed() < self.ttl
        {
            return *active;
        }
        match self.auth.ask_with(CheckUserActive { user_id: user_id.to_string() }, meta).await {
            Ok(active) => {
                let mut answers = self.answers.write();
                if answers.len() >= CAPACITY {
                    answers.clear();
                }
                answers.insert(user_id.to_string(), (active, Instant::now()));
                active
            }
            Err(error) => {
                tracing::warn!(code = %error.code, "could not check the user with the auth service; trusting the token");
                true
            }
        }
    }
}
