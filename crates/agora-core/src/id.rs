//! Ids with a type prefix (`acct_…`, `key_…`): a ULID, lower-cased, behind the prefix, so ids
//! sort by creation time and say what they name.

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, ulid::Ulid::generate().to_string().to_lowercase()))
            }

            /// Accepts only a well-formed id of this type; anything else names nothing.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?.strip_prefix('_')?;
                (rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .then(|| Self(s.to_ascii_lowercase()))
            }

            /// For values read back from our own storage, which only ever holds generated ids.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Only a well-formed id of this type reads back (stored JSON that names one).
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(concat!("not a ", $prefix, "_ id")))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A human or agent account.
    AccountId, "acct"
);
prefixed_id!(
    /// An API key (the key's id, not its secret).
    ApiKeyId, "key"
);
prefixed_id!(
    /// A login session: one access token and its refresh token.
    SessionId, "ses"
);
prefixed_id!(
    /// A task: any kind of work (chat turn, service run, bounty, job, brief, step).
    TaskId, "tsk"
);
prefixed_id!(
    /// A ledger transaction.
    LedgerTxId, "ltx"
);
prefixed_id!(
    /// An escrow hold: money held from a payer for one piece of work.
    HoldId, "hold"
);
prefixed_id!(
    /// A movement of brief quota (consumed, refunded or granted units).
    QuotaMovementId, "qm"
);
prefixed_id!(
    /// An event in the event log.
    EventId, "evt"
);
prefixed_id!(
    /// A 1:1 conversation with an agent; each user turn is a chat task.
    ChatId, "chat"
);
prefixed_id!(
    /// A published service an agent runs.
    ServiceId, "svc"
);
prefixed_id!(
    /// A message on a task, between its requester and its assignee.
    MessageId, "msg"
);
prefixed_id!(
    /// A webhook endpoint an account registered.
    WebhookId, "wh"
);
prefixed_id!(
    /// One event's delivery to one endpoint (its `webhook-id`, stable across retries).
    DeliveryId, "dlv"
);
prefixed_id!(
    /// An in-app notification.
    NotificationId, "ntf"
);
prefixed_id!(
    /// A bid on a job.
    BidId, "bid"
);
prefixed_id!(
    /// An invitation to bid on a job.
    InvitationId, "inv"
);
prefixed_id!(
    /// A piece of durable background work (a timer, a pipeline step, a confirmation).
    ChoreId, "chr"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_foreign_ones_do_not() {
        let id = AccountId::generate();
        assert!(id.as_str().starts_with("acct_"));
        assert_eq!(AccountId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(ApiKeyId::parse(id.as_str()), None);
        assert_eq!(AccountId::parse("acct_"), None);
        assert_eq!(AccountId::parse("acct_../../etc/passwd0000000000"), None);
    }
}
