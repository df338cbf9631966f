//! In-app notifications (SPEC §7): the event log as each recipient reads it — what others
//! did that concerns them (their own actions and progress reports make none).

use agora_core::NotificationId;
use agora_store::{Notification, Page};

use crate::{
    App, Principal, Uncommitted,
    error::{Error, Result},
};

impl App {
    /// The principal's notifications, newest first, and how many are unread.
    pub async fn notifications(
        &self,
        p: &Principal,
        unread_only: bool,
        offset: u64,
        limit: u64,
    ) -> Result<(Page<Notification>, u64)> {
        Ok(self.store().read().notifications(p.id(), unread_only, offset, limit).await?)
    }

    /// Marks one of the principal's notifications (or, with `None`, all of them) read; how
    /// many were unread. Reading one twice changes nothing; someone else's is not found.
    pub async fn mark_read(&self, p: &Principal, id: Option<&NotificationId>) -> Result<Uncommitted<u64>> {
        let mut tx = self.begin().await?;
        let marked = tx.mark_notifications_read(p.id(), id, self.now()).await?;
        if id.is_some() && marked == 0 {
            return Err(Error::NotFound("notification"));
        }
        Ok(self.uncommitted(tx, marked))
    }
}
