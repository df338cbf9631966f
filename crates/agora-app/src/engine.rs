//! The work engine (SPEC §1 principles 1–3, §3, §4): creating tasks, claiming them from an
//! inbox, and applying every command to them — the one place a task changes, whichever
//! frontend or worker asked.
//!
//! Each operation, in the caller's transaction:
//! 1. locks the task (`task_for_update`);
//! 2. asks the state machine (`agora_core::task::apply`) whether the command is legal and
//!    what the task becomes — nothing here sets a status by itself;
//! 3. applies the kind's effects: leases, deadlines, the delivery, its auto-accept timer,
//!    and money through [`crate::money`] (hold at creation, release on completion, refund on
//!    failure);
//! 4. appends the transition's events (with the task's audience: requester and assignee)
//!    and wakes the assignee's inbox when work is queued for it.
//!
//! Commit the transaction to make all of it happen, or drop it to undo all of it.

use agora_core::{
    AccountId, EventId, MessageId, TaskId, Timestamp,
    event::EventType,
    ledger::TxKind,
    task::{self, Command, Relation, TaskKind, TaskSnapshot, TaskStatus},
    work::{Delivery, ProgressReport, bounty_payout},
};
use agora_store::{ChatMessage, Due, NewEvent, Outcome, Reference, Task, TaskMessage, Tx};
use serde_json::{Value, json};

use crate::{
    Settings, access, chores,
    error::{Error, Refusal, Result},
    money::{self, Why},
};

/// Who issues a command: an account, or the system (workers).
#[derive(Debug, Clone, Copy)]
pub(crate) enum By<'a> {
    Account(&'a AccountId),
    System,
}

impl By<'_> {
    fn relation(&self, task: &Task) -> Relation {
        match self {
            By::System => Relation::System,
            By::Account(id) => access::relation(task, id),
        }
    }

    fn account(&self) -> Option<AccountId> {
        match self {
            By::Account(id) => Some((*id).clone()),
            By::System => None,
        }
    }
}

/// A command with what it carries.
#[derive(Debug, Clone)]
pub(crate) enum Act {
    /// The requester names the assignee (a hired bid): `open → queued`.
    Assign(AccountId),
    /// A job posting's bidding closed with hires: `open → completed`.
    Fill,
    /// The system: an open or queued task's deadline passed.
    DeadlineExpired,
    /// Take a queued task (its assignee) or an open bounty (anyone but its poster).
    Claim,
    Progress(ProgressReport),
    Deliver(Delivery),
    /// The assignee gives up, with an error log.
    Fail(String),
    Accept,
    /// Send a delivery back, with optional feedback (kept as a task message).
    RequestRevision(Option<String>),
    Cancel,
    /// The requester gives up on a revision whose deadline has passed.
    CancelRevision,
    /// The requester refuses delivered work whose worker was banned.
    Reject,
    /// A bounty's poster takes back an overdue claim; the bounty reopens.
    ReleaseClaim,
    LeaseExpired,
    /// The assignee can no longer work (banned): see `Command::Withdraw`.
    Withdraw,
}

impl Act {
    fn command(&self) -> Command {
        match self {
            Act::Assign(_) => Command::Assign,
            Act::Fill => Command::Fill,
            Act::DeadlineExpired => Command::DeadlineExpired,
            Act::Claim => Command::Claim,
            Act::Progress(_) => Command::Progress,
            Act::Deliver(_) => Command::Deliver,
            Act::Fail(_) => Command::Fail,
            Act::Accept => Command::Accept,
            Act::RequestRevision(_) => Command::RequestRevision,
            Act::Cancel => Command::Cancel,
            Act::CancelRevision => Command::CancelRevision,
            Act::Reject => Command::Reject,
            Act::ReleaseClaim => Command::ReleaseClaim,
            Act::LeaseExpired => Command::LeaseExpired,
            Act::Withdraw => Command::Withdraw,
        }
    }

    /// What "cancel" means for `task`: cancelling work nobody has started, or giving up on
    /// a revision that has a deadline.
    pub(crate) fn cancel(task: &Task) -> Self {
        if task.status == TaskStatus::InProgress && task.revision_due_at.is_some() {
            Act::CancelRevision
        } else {
            Act::Cancel
        }
    }
}

/// Money a command moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// Paid out of escrow to the assignee, before the fee.
    pub released: i64,
    pub fee: i64,
    /// What the assignee received (`released - fee`).
    pub net: i64,
    /// Returned to the requester (refund, or a late bounty's penalty).
    pub refunded: i64,
}

/// A task after a command, and the money it moved.
#[derive(Debug, Clone)]
pub struct Done {
    pub task: Task,
    pub moved: Moved,
}

/// Kinds whose `in_progress` time is bounded by a lease (SPEC §3); the others run on
/// deadlines.
pub fn is_leased(kind: TaskKind) -> bool {
    matches!(kind, TaskKind::Chat | TaskKind::Service | TaskKind::Step)
}

/// The key of a task's auto-accept timer.
pub(crate) fn auto_accept_key(task: &TaskId) -> String {
    format!("auto_accept:{task}")
}

/// Creates `task` (its status and events come from the state machine's creation rule),
/// holding `task.price` from the requester first when it has one (`INSUFFICIENT_FUNDS`
/// otherwise). Queued work wakes its assignee's inbox at commit.
pub(crate) async fn create(tx: &mut dyn Tx, mut task: Task, now: Timestamp) -> Result<Task> {
    task.status = task::create_status(task.kind);
    task.created_at = now;
    task.updated_at = now;
    // The task's own events first, then the money they cause (the log reads in that order).
    for event in task::create_events(task.kind) {
        append(tx, &task, event, Some(&task.requester_id), None, json!({}), now).await?;
    }
    if let (Some(price), Some(currency)) = (task.price.filter(|p| *p > 0), task.currency.clone()) {
        let why = Why {
            actor_id: Some(task.requester_id.clone()),
            reference: Some(Reference::new("task", task.id.as_str())),
            reason: None,
        };
        let hold = money::hold(tx, &task.requester_id, &currency, price, &why, now).await?;
        task.hold_id = Some(hold.id);
    }
    tx.insert_task(&task).await?;
    if task.status == TaskStatus::Queued
        && let Some(agent) = &task.assignee_id
    {
        tx.wake(agent);
    }
    Ok(task)
}

/// Claims the oldest task waiting in `agent`'s inbox, if it holds fewer tasks than it works
/// on at once (`max_concurrent`). Also records that the agent was seen.
pub(crate) async fn claim_next(
    tx: &mut dyn Tx,
    agent: &AccountId,
    max_concurrent: u32,
    s: &Settings,
    now: Timestamp,
) -> Result<Option<Task>> {
    // Written first: on PostgreSQL it locks the agent's row, so one agent's concurrent
    // polls count and claim one after the other and cannot exceed its limit together.
    tx.touch_presence(agent, now, agora_store::Sighting::Poll).await?;
    if tx.in_progress_count(agent).await? >= i64::from(max_concurrent) {
        return Ok(None);
    }
    let Some(task) = tx.next_queued(agent).await? else { return Ok(None) };
    let done = apply(tx, task, By::Account(agent), Act::Claim, s, now).await?;
    Ok(Some(done.task))
}

/// Applies `act` by `by` to the task `id`. `NOT_FOUND` when there is no such task; the
/// state machine's refusal when the command is not legal.
pub(crate) async fn act(
    tx: &mut dyn Tx,
    id: &TaskId,
    by: By<'_>,
    act: Act,
    s: &Settings,
    now: Timestamp,
) -> Result<Done> {
    let task = tx.task_for_update(id).await?.ok_or(Error::NotFound("task"))?;
    apply(tx, task, by, act, s, now).await
}

/// Applies the system's command to a task that fell due (taken with `Tx::due_task`).
pub(crate) async fn run_due(
    tx: &mut dyn Tx,
    task: Task,
    due: Due,
    s: &Settings,
    now: Timestamp,
) -> Result<Done> {
    let act = match due {
        Due::LeaseExpired => Act::LeaseExpired,
    };
    apply(tx, task, By::System, act, s, now).await
}

/// Bans (`Some(time)`) or unbans (`None`) an account. A ban also withdraws every task the
/// account holds (SPEC §2: "their claimed tasks fail over"): direct work fails and is
/// refunded, open-market work reopens, steps requeue. Returns the tasks withdrawn;
/// `NOT_FOUND` when there is no such account.
pub(crate) async fn set_ban(
    tx: &mut dyn Tx,
    account: &AccountId,
    banned_at: Option<Timestamp>,
    s: &Settings,
    now: Timestamp,
) -> Result<Vec<Task>> {
    // Tasks first, the account row last: the order every task command locks them in (a
    // delivery locks its task, then counts on the account), so the two cannot deadlock.
    let mut withdrawn = Vec::new();
    if banned_at.is_some() {
        for id in tx.held_tasks(account).await? {
            withdrawn.push(act(tx, &id, By::System, Act::Withdraw, s, now).await?.task);
        }
    }
    if !tx.set_banned(account, banned_at, now).await? {
        return Err(Error::NotFound("account"));
    }
    Ok(withdrawn)
}

/// Adds a message to a locked task from its requester or assignee (`message.received`).
pub(crate) async fn message(
    tx: &mut dyn Tx,
    task: &Task,
    author: &AccountId,
    body: String,
    now: Timestamp,
) -> Result<TaskMessage> {
    let snapshot = TaskSnapshot { kind: task.kind, status: task.status };
    let t = task::apply(&snapshot, access::relation(task, author), Command::Message)?;
    let msg = TaskMessage {
        id: MessageId::generate(),
        task_id: task.id.clone(),
        author_id: author.clone(),
        body,
        created_at: now,
    };
    tx.insert_task_message(&msg).await?;
    for event in t.events {
        append(tx, task, event, Some(author), None, json!({ "message_id": msg.id }), now).await?;
    }
    Ok(msg)
}

/// The one place a command changes a task: see the module docs.
pub(crate) async fn apply(
    tx: &mut dyn Tx,
    mut task: Task,
    by: By<'_>,
    act: Act,
    s: &Settings,
    now: Timestamp,
) -> Result<Done> {
    let snapshot = TaskSnapshot { kind: task.kind, status: task.status };
    let command = act.command();
    let t = task::apply(&snapshot, by.relation(&task), command)?;
    let from = task.status;
    task.status = t.status;
    task.updated_at = now;
    if t.sets_assignee {
        task.assignee_id = by.account();
    }
    let mut moved = Moved::default();
    let mut extra = json!({});
    let lease = now.plus_millis(s.lease_ms);
    let had_timer = task.auto_accept_at.take().is_some();
    match act {
        Act::Assign(worker) => {
            tx.wake(&worker);
            task.assignee_id = Some(worker);
        }
        Act::Fill | Act::DeadlineExpired => {}
        Act::Claim => {
            if is_leased(task.kind) {
                task.lease_expires_at = Some(lease);
            } else if let agora_core::work::TaskTerms::Bounty(b) = &task.terms {
                task.deadline_at = Some(now.plus_seconds(i64::from(b.max_delivery_hours) * 3600));
            }
        }
        Act::Progress(report) => {
            extra = json!({ "percent": report.percent, "eta_seconds": report.eta_seconds,
                "current_step": report.current_step });
            task.progress = Some(report);
            if is_leased(task.kind) {
                task.lease_expires_at = Some(lease);
            }
        }
        Act::Deliver(delivery) => {
            check_delivery(&task, &delivery)?;
            task.lease_expires_at = None;
            task.revision_due_at = None;
            // The first delivery is what counts for lateness; a redelivery after a
            // revision does not make on-time work late.
            task.delivered_at.get_or_insert(now);
            if task.kind == TaskKind::Chat {
                let reply = ChatMessage {
                    role: "assistant".into(),
                    content: delivery.text.clone().unwrap_or_default(),
                };
                close_turn(tx, &task, Some(reply), now).await?;
            } else {
                let at = now.plus_millis(s.auto_accept_ms);
                task.auto_accept_at = Some(at);
                chores::schedule(
                    tx,
                    chores::Kind::AutoAccept,
                    Some(auto_accept_key(&task.id)),
                    json!({ "task_id": task.id }),
                    at,
                    now,
                )
                .await?;
            }
            task.output = Some(delivery);
        }
        Act::Fail(log) => {
            task.lease_expires_at = None;
            task.error = Some(log.clone());
            extra = json!({ "error": log });
        }
        Act::Accept => {
            extra = json!({ "auto": matches!(by, By::System) });
        }
        Act::RequestRevision(feedback) => {
            // No lease: the agent learns of the revision from the task's events, not its
            // inbox, so a lease running out would refund finished work and blame the agent.
            // A deadline instead: once it passes, the requester may give up on it.
            task.lease_expires_at = None;
            let due = now.plus_millis(s.revision_ms);
            task.revision_due_at = Some(due);
            extra = json!({ "revision_due_at": due.to_rfc3339() });
            if let Some(body) = feedback {
                let msg = TaskMessage {
                    id: MessageId::generate(),
                    task_id: task.id.clone(),
                    author_id: task.requester_id.clone(),
                    body: body.clone(),
                    created_at: now,
                };
                tx.insert_task_message(&msg).await?;
                extra =
                    json!({ "feedback": body, "message_id": msg.id, "revision_due_at": due.to_rfc3339() });
            }
        }
        Act::Cancel => {}
        Act::CancelRevision => {
            let Some(due) = task.revision_due_at else {
                return Err(Error::internal("a revision cancelled without a deadline"));
            };
            if due > now {
                return Err(Refusal::RevisionNotOverdue { revision_due_at: due.to_rfc3339() }.into());
            }
            extra = json!({ "reason": "revision_overdue", "former_assignee_id": task.assignee_id });
        }
        Act::Reject => {
            let assignee = match &task.assignee_id {
                Some(a) => tx.account(a).await?,
                None => None,
            };
            if !assignee.is_some_and(|a| a.is_banned()) {
                return Err(Refusal::AssigneeActive.into());
            }
            extra = json!({ "reason": "assignee_banned" });
        }
        Act::ReleaseClaim => {
            if task.delivered_at.is_some() {
                return Err(Refusal::ClaimHasDelivery.into());
            }
            if task.deadline_at.is_none_or(|d| d > now) {
                return Err(Refusal::ClaimNotOverdue.into());
            }
            extra = json!({ "released_assignee_id": task.assignee_id });
        }
        Act::Withdraw => {
            task.lease_expires_at = None;
            extra = json!({ "reason": "assignee_banned", "withdrawn_assignee_id": task.assignee_id });
        }
        Act::LeaseExpired => {
            task.lease_expires_at = None;
        }
    }
    // The auto-accept timer lives only while the task waits for review.
    if had_timer && task.auto_accept_at.is_none() && !matches!(by, By::System) {
        tx.cancel_chore(&auto_accept_key(&task.id)).await?;
    }
    if t.status != TaskStatus::InProgress {
        task.revision_due_at = None;
    }
    // A task that reopens (a released, abandoned or withdrawn claim) starts afresh.
    if t.status == TaskStatus::Open {
        task.deadline_at = None;
        task.delivered_at = None;
        task.progress = None;
        task.output = None;
    }
    let former = if t.clears_assignee { task.assignee_id.take() } else { None };
    // An agent whose task left `in_progress` may now take more (or, for a requeued step,
    // this one again): let its waiting polls look.
    if from == TaskStatus::InProgress
        && t.status != TaskStatus::InProgress
        && let Some(agent) = former.as_ref().or(task.assignee_id.as_ref())
    {
        tx.wake(agent);
    }
    for event in t.events {
        append(tx, &task, event, by.account().as_ref(), former.as_ref(), extra.clone(), now).await?;
    }
    // Money and counters follow where the task ended up (after its events, in the log).
    let why = Why {
        actor_id: by.account(),
        reference: Some(Reference::new("task", task.id.as_str())),
        reason: None,
    };
    match t.status {
        TaskStatus::Completed => {
            moved = pay_out(tx, &task, s, &why, now).await?;
            if let Some(agent) = &task.assignee_id {
                tx.count_outcome(agent, Outcome::Completed).await?;
            }
            // Only paid runs count as paid.
            if let (Some(service), true) = (&task.service_id, moved.released > 0) {
                tx.service_paid(service, moved.released).await?;
            }
        }
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Expired => {
            moved.refunded = refund_rest(tx, &task, &why, now).await?;
            if task.kind == TaskKind::Chat {
                close_turn(tx, &task, None, now).await?;
            }
            let failed_by_worker = t.status == TaskStatus::Failed || command == Command::CancelRevision;
            if let (true, Some(agent)) = (failed_by_worker, &task.assignee_id) {
                let outcome =
                    if command == Command::LeaseExpired { Outcome::NoResponse } else { Outcome::Failed };
                tx.count_outcome(agent, outcome).await?;
            }
        }
        _ => {}
    }
    tx.update_task(&task).await?;
    Ok(Done { task, moved })
}

/// Ends a chat turn: the chat may take its next message; a reply joins the conversation.
async fn close_turn(tx: &mut dyn Tx, task: &Task, reply: Option<ChatMessage>, now: Timestamp) -> Result<()> {
    let Some(chat_id) = &task.chat_id else { return Ok(()) };
    let Some(mut chat) = tx.chat_for_update(chat_id).await? else { return Ok(()) };
    if chat.open_task_id.as_ref() == Some(&task.id) {
        chat.open_task_id = None;
    }
    chat.messages.extend(reply);
    chat.updated_at = now;
    Ok(tx.update_chat(&chat).await?)
}

/// Checks a delivery against what the task asks for: a chat reply needs text; a task with
/// an output schema needs output that satisfies it (422 with pointers).
fn check_delivery(task: &Task, d: &Delivery) -> Result<()> {
    if task.kind == TaskKind::Chat && d.text.is_none() {
        return Err(Error::invalid("text", "a chat reply needs text"));
    }
    if let Some(schema) = task.terms.output_schema() {
        let output = d.output.clone().unwrap_or(Value::Null);
        agora_core::schema::check(schema, &output, "output")?;
    }
    Ok(())
}

/// Pays what is left in the task's escrow to its assignee (minus the fee). A bounty
/// delivered after its deadline first returns its penalty to the poster.
async fn pay_out(tx: &mut dyn Tx, task: &Task, s: &Settings, why: &Why, now: Timestamp) -> Result<Moved> {
    let (Some(hold_id), Some(worker)) = (&task.hold_id, &task.assignee_id) else {
        return Ok(Moved::default());
    };
    let remaining = money::remaining(tx, hold_id).await?;
    if remaining <= 0 {
        return Ok(Moved::default());
    }
    let mut moved = Moved::default();
    let mut pay = remaining;
    if let agora_core::work::TaskTerms::Bounty(b) = &task.terms {
        let late = matches!((task.delivered_at, task.deadline_at), (Some(d), Some(dl)) if d > dl);
        let (gross, back) = bounty_payout(remaining, b.penalty.min(remaining), late);
        if back > 0 {
            money::refund(tx, hold_id, Some(back), TxKind::Penalty, why, now).await?;
            moved.refunded = back;
        }
        pay = gross;
    }
    if pay > 0 {
        let settled = money::release(tx, hold_id, worker, Some(pay), s.fee_bps, why, now).await?;
        moved.released = settled.amount;
        moved.fee = settled.split.fee;
        moved.net = settled.split.net;
    }
    Ok(moved)
}

/// Returns whatever is left in the task's escrow to the requester.
async fn refund_rest(tx: &mut dyn Tx, task: &Task, why: &Why, now: Timestamp) -> Result<i64> {
    let Some(hold_id) = &task.hold_id else { return Ok(0) };
    if money::remaining(tx, hold_id).await? <= 0 {
        return Ok(0);
    }
    let (_, amount) = money::refund(tx, hold_id, None, TxKind::Refund, why, now).await?;
    Ok(amount)
}

/// Appends a task event, seen by the requester and the assignee.
async fn append(
    tx: &mut dyn Tx,
    task: &Task,
    event: EventType,
    actor: Option<&AccountId>,
    also: Option<&AccountId>,
    extra: Value,
    now: Timestamp,
) -> Result<()> {
    let mut payload = json!({
        "task_id": task.id, "kind": task.kind.as_str(), "status": task.status.as_str(),
        "requester_id": task.requester_id, "assignee_id": task.assignee_id, "title": task.title,
    });
    if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        p.extend(extra);
    }
    // Seen by the requester and the assignee, and by a former assignee when the event is
    // about its claim ending.
    let mut audience = vec![task.requester_id.clone()];
    audience.extend(task.assignee_id.clone());
    audience.extend(also.cloned());
    tx.append_event(&NewEvent {
        id: EventId::generate(),
        event_type: event,
        actor_id: actor.cloned(),
        task_id: Some(task.id.to_string()),
        audience,
        payload,
        created_at: now,
    })
    .await?;
    Ok(())
}
