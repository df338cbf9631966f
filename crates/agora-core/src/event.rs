//! The event catalogue (SPEC §1 principle 3, §7): every type of entry in the event log.
//!
//! This enum is the one list. The webhook subscription vocabulary, the live stream's event
//! names, the task timeline, the payment events and the notification texts all derive from
//! it, so a new event type is added here once and every reader of the log knows it.

use serde::Serialize;
use serde_json::Value;

/// The type of an entry in the event log; its string (`noun.verb`) is what webhooks, the
/// live stream and timelines show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    TaskCreated,
    TaskMatched,
    TaskAssigned,
    TaskClaimed,
    TaskProgress,
    TaskDelivered,
    TaskCompleted,
    TaskFailed,
    TaskCancelled,
    TaskExpired,
    TaskReopened,
    TaskRevisionRequested,
    BidCreated,
    BidAccepted,
    BidRejected,
    /// The requester countered a bid with a new amount or number of days.
    BidCountered,
    /// The bidder accepted or declined the counter-offer (`accepted` in the payload).
    BidCounterAnswered,
    BidWithdrawn,
    MessageReceived,
    DeliverySubmitted,
    DeliveryReviewed,
    PaymentHeld,
    PaymentReleased,
    PaymentRefunded,
    PaymentToppedUp,
    PaymentAdjusted,
    PaymentIntentCreated,
    PaymentConfirmed,
    PaymentCryptoConfirmed,
    ReviewReceived,
    InvitationReceived,
    PostReplied,
    DisputeOpened,
    DisputeResolved,
    WebhookDisabled,
    /// A test delivery (`POST /webhooks/{id}/ping`), sent to one endpoint and kept in its
    /// delivery log; never an entry of the event log.
    WebhookPing,
}

impl EventType {
    pub const ALL: [Self; 36] = [
        Self::TaskCreated,
        Self::TaskMatched,
        Self::TaskAssigned,
        Self::TaskClaimed,
        Self::TaskProgress,
        Self::TaskDelivered,
        Self::TaskCompleted,
        Self::TaskFailed,
        Self::TaskCancelled,
        Self::TaskExpired,
        Self::TaskReopened,
        Self::TaskRevisionRequested,
        Self::BidCreated,
        Self::BidAccepted,
        Self::BidRejected,
        Self::BidCountered,
        Self::BidCounterAnswered,
        Self::BidWithdrawn,
        Self::MessageReceived,
        Self::DeliverySubmitted,
        Self::DeliveryReviewed,
        Self::PaymentHeld,
        Self::PaymentReleased,
        Self::PaymentRefunded,
        Self::PaymentToppedUp,
        Self::PaymentAdjusted,
        Self::PaymentIntentCreated,
        Self::PaymentConfirmed,
        Self::PaymentCryptoConfirmed,
        Self::ReviewReceived,
        Self::InvitationReceived,
        Self::PostReplied,
        Self::DisputeOpened,
        Self::DisputeResolved,
        Self::WebhookDisabled,
        Self::WebhookPing,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TaskCreated => "task.created",
            Self::TaskMatched => "task.matched",
            Self::TaskAssigned => "task.assigned",
            Self::TaskClaimed => "task.claimed",
            Self::TaskProgress => "task.progress",
            Self::TaskDelivered => "task.delivered",
            Self::TaskCompleted => "task.completed",
            Self::TaskFailed => "task.failed",
            Self::TaskCancelled => "task.cancelled",
            Self::TaskExpired => "task.expired",
            Self::TaskReopened => "task.reopened",
            Self::TaskRevisionRequested => "task.revision_requested",
            Self::BidCreated => "bid.created",
            Self::BidAccepted => "bid.accepted",
            Self::BidRejected => "bid.rejected",
            Self::BidCountered => "bid.countered",
            Self::BidCounterAnswered => "bid.counter_answered",
            Self::BidWithdrawn => "bid.withdrawn",
            Self::MessageReceived => "message.received",
            Self::DeliverySubmitted => "delivery.submitted",
            Self::DeliveryReviewed => "delivery.reviewed",
            Self::PaymentHeld => "payment.held",
            Self::PaymentReleased => "payment.released",
            Self::PaymentRefunded => "payment.refunded",
            Self::PaymentToppedUp => "payment.topped_up",
            Self::PaymentAdjusted => "payment.adjusted",
            Self::PaymentIntentCreated => "payment.intent.created",
            Self::PaymentConfirmed => "payment.confirmed",
            Self::PaymentCryptoConfirmed => "payment.crypto.confirmed",
            Self::ReviewReceived => "review.received",
            Self::InvitationReceived => "invitation.received",
            Self::PostReplied => "post.replied",
            Self::DisputeOpened => "dispute.opened",
            Self::DisputeResolved => "dispute.resolved",
            Self::WebhookDisabled => "webhook.disabled",
            Self::WebhookPing => "webhook.ping",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The noun before the first dot (`payment` for `payment.crypto.confirmed`).
    pub fn noun(self) -> &'static str {
        let s = self.as_str();
        s.split_once('.').map_or(s, |(noun, _)| noun)
    }

    /// Whether the recipient gets an in-app notification of it. Progress reports are
    /// frequent and say little to a person; they stay in webhooks and the live stream.
    pub const fn notifies(self) -> bool {
        !matches!(self, Self::TaskProgress)
    }

    /// What an in-app notification says about an event of this type: a title and a
    /// sentence, from the payload (task events carry the task's title, payments an amount).
    pub fn describe(self, payload: &Value) -> (String, String) {
        let task = payload.get("title").and_then(Value::as_str).unwrap_or("a task");
        let amount = |key: &str| {
            let n = payload.get(key).and_then(Value::as_i64).unwrap_or(0);
            let c = payload.get("currency").and_then(Value::as_str).unwrap_or("");
            format!("{n} {c}").trim_end().to_owned()
        };
        let (title, message) = match self {
            Self::TaskCreated => ("New task", format!("\"{task}\" was created.")),
            Self::TaskMatched => {
                ("A task matches your skills", format!("\"{task}\" is looking for someone like you."))
            }
            Self::TaskAssigned => ("Task assigned", format!("\"{task}\" was assigned.")),
            Self::TaskClaimed => ("Task picked up", format!("\"{task}\" is being worked on.")),
            Self::TaskProgress => ("Progress", format!("\"{task}\" reported progress.")),
            Self::TaskDelivered => ("Work delivered", format!("\"{task}\" was delivered and awaits review.")),
            Self::TaskCompleted => ("Task completed", format!("\"{task}\" is complete.")),
            Self::TaskFailed => ("Task failed", format!("\"{task}\" failed.")),
            Self::TaskCancelled => ("Task cancelled", format!("\"{task}\" was cancelled.")),
            Self::TaskExpired => ("Task expired", format!("\"{task}\" expired.")),
            Self::TaskReopened => ("Task reopened", format!("\"{task}\" is open again.")),
            Self::TaskRevisionRequested => {
                ("Revision requested", format!("\"{task}\" needs another revision."))
            }
            Self::BidCreated => ("New bid", format!("A new bid arrived on \"{task}\".")),
            Self::BidAccepted => {
                ("Bid accepted", format!("Your bid on \"{task}\" was accepted: you are hired."))
            }
            Self::BidRejected => ("Bid not chosen", format!("Your bid on \"{task}\" was not chosen.")),
            Self::BidCountered => ("Counter-offer", format!("The poster of \"{task}\" countered your bid.")),
            Self::BidCounterAnswered => {
                ("Counter-offer answered", format!("Your counter-offer on \"{task}\" was answered."))
            }
            Self::BidWithdrawn => ("Bid withdrawn", format!("A bid on \"{task}\" was withdrawn.")),
            Self::InvitationReceived => {
                ("Invitation to bid", format!("You are invited to bid on \"{task}\"."))
            }
            Self::MessageReceived => ("New message", format!("New message on \"{task}\".")),
            Self::PaymentHeld => ("Payment held", format!("{} is held in escrow.", amount("amount"))),
            Self::PaymentReleased => ("Payment released", format!("{} was paid out.", amount("amount"))),
            Self::PaymentRefunded => {
                ("Payment refunded", format!("{} came back to your wallet.", amount("amount")))
            }
            Self::PaymentToppedUp => {
                ("Wallet topped up", format!("{} was added to your wallet.", amount("amount")))
            }
            Self::PaymentAdjusted => {
                ("Wallet adjusted", format!("Your wallet changed by {}.", amount("delta")))
            }
            Self::WebhookDisabled => (
                "Webhook endpoint disabled",
                format!(
                    "Deliveries to {} stopped: {}.",
                    payload.get("url").and_then(Value::as_str).unwrap_or("an endpoint"),
                    payload.get("reason").and_then(Value::as_str).unwrap_or("it kept failing")
                ),
            ),
            other => ("Update", other.as_str().to_owned()),
        };
        (title.to_owned(), message)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Serialised through `as_str` so the wire name and the stored name cannot drift apart.
impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(EventType::ALL.iter().filter(|o| o.as_str() == e.as_str()).count(), 1);
        }
        assert_eq!(EventType::PaymentCryptoConfirmed.noun(), "payment");
        assert_eq!(EventType::parse("task.complete"), None);
    }

    #[test]
    fn spec_event_types_are_all_in_the_catalogue() {
        // SPEC §7's list.
        for name in [
            "task.created",
            "task.matched",
            "task.assigned",
            "task.claimed",
            "task.progress",
            "task.delivered",
            "task.completed",
            "task.failed",
            "task.cancelled",
            "task.expired",
            "bid.created",
            "bid.accepted",
            "bid.rejected",
            "message.received",
            "delivery.submitted",
            "delivery.reviewed",
            "payment.held",
            "payment.released",
            "payment.refunded",
            "payment.intent.created",
            "payment.confirmed",
            "payment.crypto.confirmed",
            "review.received",
            "invitation.received",
            "post.replied",
            "dispute.opened",
            "dispute.resolved",
            "webhook.disabled",
        ] {
            assert!(EventType::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn notifications_name_the_task_or_amount() {
        let (t, m) = EventType::TaskDelivered.describe(&serde_json::json!({"title": "Logo"}));
        assert_eq!(t, "Work delivered");
        assert!(m.contains("Logo"));
        let (_, m) =
            EventType::PaymentReleased.describe(&serde_json::json!({"amount": 90, "currency": "PTS"}));
        assert!(m.contains("90 PTS"));
        assert!(!EventType::TaskProgress.notifies());
    }
}
