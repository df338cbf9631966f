//! Tasks of every kind: reading them (their parties only; anyone else is told "not found",
//! except for an open bounty's terms), and the commands both sides issue.

use agora_core::{
    TaskId,
    task::{TaskKind, TaskStatus},
    work::{Delivery, ProgressReport},
};
use agora_store::{Event, Page, Task, TaskMessage, TaskQuery};

use crate::{
    App, Principal, Uncommitted, access,
    engine::{self, Act, By, Done},
    error::Result,
};

/// Which side of its tasks the principal lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRole {
    Requester,
    Worker,
}

/// A list of the principal's tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// One side, or both when `None`.
    pub role: Option<TaskRole>,
    /// Any of these statuses (all when empty).
    pub statuses: Vec<TaskStatus>,
    /// Any of these kinds (all when empty).
    pub kinds: Vec<TaskKind>,
    /// Only tasks someone has been assigned (a bounty becomes a task when claimed).
    pub assigned_only: bool,
    pub offset: u64,
    pub limit: u64,
}

/// A task as one of its parties sees it; a stranger looking at an open bounty gets its
/// terms only (no messages, no timeline).
#[derive(Debug, Clone)]
pub struct TaskDetail {
    pub task: Task,
    pub messages: Option<Vec<TaskMessage>>,
    pub timeline: Option<Vec<Event>>,
}

/// A command on a task, by its requester or its assignee.
#[derive(Debug, Clone)]
pub enum TaskCommand {
    Progress(ProgressReport),
    Deliver(Delivery),
    /// The assignee gives up, with an error log.
    Fail(String),
    Accept,
    /// Send a delivery back, with optional feedback.
    Revision(Option<String>),
    /// Cancel work nobody has started, or give up on a revision whose deadline passed.
    Cancel,
    /// Refuse delivered work whose worker was banned (a refund).
    Reject,
}

impl App {
    /// The principal's tasks, newest first.
    pub async fn tasks(&self, p: &Principal, f: &TaskFilter) -> Result<Page<Task>> {
        let me = p.id().clone();
        let (requester, assignee, either) = match f.role {
            None => (Some(me.clone()), Some(me), true),
            Some(TaskRole::Requester) => (Some(me), None, false),
            Some(TaskRole::Worker) => (None, Some(me), false),
        };
        let query = TaskQuery {
            requester,
            assignee,
            either,
            statuses: f.statuses.clone(),
            kinds: f.kinds.clone(),
            assigned_only: f.assigned_only,
            offset: f.offset,
            limit: f.limit,
        };
        Ok(self.store().read().tasks(&query).await?)
    }

    /// A task the principal may see, with its messages and timeline for its parties.
    pub async fn task(&self, p: &Principal, id: &TaskId) -> Result<TaskDetail> {
        let mut read = self.store().read();
        let task = access::visible_task(read.task(id).await?, p.id())?;
        if !access::is_task_party(&task, p.id()) {
            return Ok(TaskDetail { task, messages: None, timeline: None });
        }
        let messages = read.task_messages(&task.id).await?;
        let timeline = read.task_events(task.id.as_str()).await?;
        Ok(TaskDetail { task, messages: Some(messages), timeline: Some(timeline) })
    }

    /// Runs a command on a task the principal may see (not found otherwise): the task after
    /// it, and the money it moved.
    pub async fn task_command(
        &self,
        p: &Principal,
        id: &TaskId,
        command: TaskCommand,
    ) -> Result<Uncommitted<Done>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let task = access::visible_task(tx.task_for_update(id).await?, p.id())?;
        let act = match command {
            TaskCommand::Progress(r) => Act::Progress(r),
            TaskCommand::Deliver(d) => Act::Deliver(d),
            TaskCommand::Fail(log) => Act::Fail(log),
            TaskCommand::Accept => Act::Accept,
            TaskCommand::Revision(feedback) => Act::RequestRevision(feedback),
            TaskCommand::Cancel => Act::cancel(&task),
            TaskCommand::Reject => Act::Reject,
        };
        let done = engine::apply(tx.as_mut(), task, By::Account(p.id()), act, self.settings(), now).await?;
        Ok(self.uncommitted(tx, done))
    }

    /// Posts a message on a task, by its requester or assignee (`message.received`).
    pub async fn post_message(
        &self,
        p: &Principal,
        id: &TaskId,
        body: &str,
    ) -> Result<Uncommitted<TaskMessage>> {
        let body = agora_core::work::message_text(body).map_err(|e| e.at("body"))?;
        let mut tx = self.begin().await?;
        let task = access::visible_task(tx.task_for_update(id).await?, p.id())?;
        let message = engine::message(tx.as_mut(), &task, p.id(), body, self.now()).await?;
        Ok(self.uncommitted(tx, message))
    }
}
