//! Tasks of every kind, their messages, and chats.

use agora_core::{
    AccountId, ChatId, HoldId, MessageId, ServiceId, TaskId, Timestamp,
    money::Currency,
    task::{TaskKind, TaskStatus},
    work::{Delivery, ProgressReport, TaskTerms},
};
use async_trait::async_trait;
use serde_json::Value;

use crate::{Page, Result};

/// A task of any kind (SPEC §4) as stored. Its status changes only through
/// `agora_core::task::apply`, applied by the application's work engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub requester_id: AccountId,
    pub assignee_id: Option<AccountId>,
    pub title: String,
    pub description: String,
    /// The input the work starts from; `None` when there is none (a bounty without input).
    pub input: Option<Value>,
    pub output: Option<Delivery>,
    /// What the task's kind adds: schemas, a bounty's penalty and hours, the service at
    /// run time.
    pub terms: TaskTerms,
    /// The assignee's error log, once it gave up.
    pub error: Option<String>,
    pub progress: Option<ProgressReport>,
    pub price: Option<i64>,
    pub currency: Option<Currency>,
    pub hold_id: Option<HoldId>,
    pub chat_id: Option<ChatId>,
    pub service_id: Option<ServiceId>,
    /// A one-off webhook URL for this task's events, signed with the requester's secret.
    pub webhook_url: Option<String>,
    /// An `in_progress` task of a leased kind goes back to the system at this time.
    pub lease_expires_at: Option<Timestamp>,
    /// A claimed bounty's delivery deadline.
    pub deadline_at: Option<Timestamp>,
    /// After a revision request: when the requester may give up on the revision (cancel
    /// for a refund) if no new delivery has come.
    pub revision_due_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    /// A `delivered` task is accepted by the system at this time.
    pub auto_accept_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Task {
    /// A new task with `terms` for `requester`, with nothing but a title; callers fill in
    /// the rest, and the work engine decides its status when it creates it.
    pub fn new(terms: TaskTerms, requester: &AccountId, title: String, now: Timestamp) -> Self {
        let kind = terms.kind();
        Self {
            id: TaskId::generate(),
            kind,
            status: agora_core::task::create_status(kind),
            requester_id: requester.clone(),
            assignee_id: None,
            title,
            description: String::new(),
            input: None,
            output: None,
            terms,
            error: None,
            progress: None,
            price: None,
            currency: None,
            hold_id: None,
            chat_id: None,
            service_id: None,
            webhook_url: None,
            lease_expires_at: None,
            deadline_at: None,
            revision_due_at: None,
            delivered_at: None,
            auto_accept_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Filters of a task list.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Tasks this account requested.
    pub requester: Option<AccountId>,
    /// Tasks assigned to this account.
    pub assignee: Option<AccountId>,
    /// Either of the two (when both are set, a task matching one is enough).
    pub either: bool,
    /// Any of these statuses (all when empty).
    pub statuses: Vec<TaskStatus>,
    /// Any of these kinds (all when empty).
    pub kinds: Vec<TaskKind>,
    /// Only tasks someone is (or was last) assigned to.
    pub assigned_only: bool,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMessage {
    pub id: MessageId,
    pub task_id: TaskId,
    pub author_id: AccountId,
    pub body: String,
    pub created_at: Timestamp,
}

/// One message of a chat conversation, as an LLM would read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub id: ChatId,
    pub requester_id: AccountId,
    pub agent_id: AccountId,
    pub messages: Vec<ChatMessage>,
    /// The turn waiting for the agent's reply; a chat has at most one at a time.
    pub open_task_id: Option<TaskId>,
    pub turns: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Work that falls due by a task's own time columns, swept by index rather than scheduled:
/// a lease moves with every progress report, so one row per lease is cheaper to sweep than
/// to reschedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// An `in_progress` task whose lease ran out.
    LeaseExpired,
}

impl Due {
    /// When `task` falls due this way.
    pub fn at(self, task: &Task) -> Option<Timestamp> {
        match self {
            Self::LeaseExpired => task.lease_expires_at,
        }
    }
}

#[async_trait]
pub trait TaskReads: Send {
    async fn task(&mut self, id: &TaskId) -> Result<Option<Task>>;
    async fn tasks(&mut self, query: &TaskQuery) -> Result<Page<Task>>;
    async fn task_messages(&mut self, id: &TaskId) -> Result<Vec<TaskMessage>>;
    /// How many tasks `agent` holds `in_progress`.
    async fn in_progress_count(&mut self, agent: &AccountId) -> Result<i64>;
    /// How many tasks each of these accounts holds `in_progress` (accounts with none are
    /// left out).
    async fn in_progress_counts(&mut self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>>;
    /// The tasks assigned to `account`, or to an agent it owns, that are queued or in
    /// progress, oldest first (what a ban of `account` withdraws).
    async fn held_tasks(&mut self, account: &AccountId) -> Result<Vec<TaskId>>;
    /// Which of `agents` have queued work waiting in their inbox (the slow safety net
    /// behind wake-ups).
    async fn with_queued_work(&mut self, agents: &[AccountId]) -> Result<Vec<AccountId>>;
    async fn chat(&mut self, id: &ChatId) -> Result<Option<Chat>>;
}

#[async_trait]
pub trait TaskWrites: Send {
    async fn insert_task(&mut self, task: &Task) -> Result<()>;
    /// The task, locked against concurrent writers until this transaction ends.
    async fn task_for_update(&mut self, id: &TaskId) -> Result<Option<Task>>;
    /// Writes back every mutable field of a task read with `task_for_update`.
    async fn update_task(&mut self, task: &Task) -> Result<()>;
    /// The oldest `queued` task assigned to `agent`, locked; on PostgreSQL rows another
    /// transaction holds are skipped (`SKIP LOCKED`), so concurrent claims never wait on
    /// or take the same task.
    async fn next_queued(&mut self, agent: &AccountId) -> Result<Option<Task>>;
    /// One task that has fallen `due` at `now`, locked, skipping ones other replicas hold;
    /// only tasks after `after` (their due time and id) in due order, so that a sweep can
    /// move past a task it failed on.
    async fn due_task(
        &mut self,
        due: Due,
        now: Timestamp,
        after: Option<&(Timestamp, TaskId)>,
    ) -> Result<Option<Task>>;
    async fn insert_task_message(&mut self, message: &TaskMessage) -> Result<()>;

    async fn insert_chat(&mut self, chat: &Chat) -> Result<()>;
    async fn chat_for_update(&mut self, id: &ChatId) -> Result<Option<Chat>>;
    async fn update_chat(&mut self, chat: &Chat) -> Result<()>;

    /// Wakes `agent`'s waiting inbox once this transaction commits (never before, never if
    /// it rolls back).
    fn wake(&mut self, agent: &AccountId);
}
