//! The reader actor (`notification/reader`): [`ListNotifications`], the caller's own
//! notifications, newest first (an admin, too, reads only their own).

use emporium_contracts::notification::{ListNotifications, NotificationView};
use emporium_contracts::page::Page;
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};
use emporium_store::Database;

use crate::error::NotificationError;
use crate::store;

/// The reader of the notifications.
pub struct NotificationReader {
    database: Database,
}

impl NotificationReader {
    /// A reader over `database`.
    pub fn new(database: Database) -> Self {
        NotificationReader { database }
    }
}

impl Behavior for NotificationReader {}

impl ServiceHandler<ListNotifications> for NotificationReader {
    fn handle(&mut self, message: ListNotifications, _meta: &CallMeta) -> Reply<Page<NotificationView>> {
        let database = self.database.clone();
        Box::pin(async move {
            let (items, total) = store::list_for_user(&database, &message.caller.user_id, message.page)
                .await
                .map_err(NotificationError::from)?;
            Ok(Page::new(items, message.page, total))
        })
    }
}
