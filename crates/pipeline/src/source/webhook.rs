//! Webhook hints: an event pushed by M3 only says which row to look at. Its values never
//! overwrite state: the row is read from M3 by key and written with M3's own timestamp, or, if
//! M3 no longer has it, deleted. So a webhook can neither set a timestamp in the future nor
//! delete a row M3 still has; polling stays on as the safety net for lost ones.

use mapping::catalog::ColumnKind;
use mapping::EntityKey;

use crate::error::PipelineError;
use crate::source::event::ChangeHint;
use crate::source::reconcile::KeyRead;
use crate::source::worker::Worker;

impl Worker {
    /// Act on one hint for this mapping's table; returns the messages emitted.
    pub(crate) async fn hint(&self, hint: &ChangeHint) -> Result<usize, PipelineError> {
        let key_cols = self.src.mapping.key_columns();
        let mut key = Vec::with_capacity(key_cols.len());
        for c in &key_cols {
            let Some(v) = hint.values.get(c) else {
                return Err(PipelineError::Webhook(format!(
                    "event lacks key column {c} (it must carry {})",
                    key_cols.join(", ")
                )));
            };
            let numeric = self
                .src
                .table
                .column(c)
                .is_some_and(|col| col.kind != ColumnKind::Alpha);
            if numeric && !crate::source::window::is_number(v.trim()) {
                return Err(PipelineError::Webhook(format!(
                    "column {c}: expected a number, got {v:?}"
                )));
            }
            key.push(v.trim().to_string());
        }
        let key = EntityKey(key);
        match self.read_key(&key).await? {
            KeyRead::Found(row) => self.write(&[row], None).await,
            KeyRead::Absent => match self.delete_change(&key.to_string()) {
                Some(change) => self.commit(vec![change], 1, 0, None).await,
                None => Ok(0),
            },
            KeyRead::Unreadable => Err(PipelineError::Webhook(
                "the row M3 returned for the event cannot be split; polling keeps it as a dead letter".into(),
            )),
        }
    }
}
